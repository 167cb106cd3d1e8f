import Tokenizer

/// A request in flight: its tokens, how many of them have KV in the cache, its blocks, and
/// its sampling and detokenization state.
final class SequenceState {
    let id: RequestID
    /// Prompt followed by generated tokens.
    var tokens: [Int32]
    let promptCount: Int
    /// Tokens whose K/V are stored in `blocks` (positions 0..<computed).
    var computed = 0
    /// Prompt tokens whose KV came from the prefix cache.
    var cachedTokens = 0
    /// KV blocks for positions 0..<blocks.count * blockTokens.
    var blocks: [Int32] = []
    var sampler: Sampler
    var decoder: StreamingDecoder
    var stopMatcher: StopMatcher
    let stopTokens: Set<Int32>
    let maxTokens: Int
    var finish: FinishReason?
    /// Order of admission, for picking a preemption victim (the newest goes first).
    var admittedAt = 0
    /// Arrival order in the engine's queue, and how often a later arrival was admitted first.
    var arrival = 0
    var overtaken = 0
    /// Set on a prefill instance once the sequence has been handed to a decode instance.
    var handedOff = false
    let sampling: SamplingParameters
    /// Prefill role: where the sequence goes after its first token.
    var handoffTo: String?
    /// The edge's id of the request, carried to the decode instance.
    var traceID = ""

    init(request: GenerationRequest, tokenizer: BPETokenizer, endOfGeneration: Set<Int32>) {
        id = request.id
        handoffTo = request.handoffTo
        traceID = request.traceID
        tokens = request.promptTokens
        promptCount = request.promptTokens.count
        sampler = Sampler(parameters: request.sampling, prompt: request.promptTokens)
        decoder = StreamingDecoder(tokenizer: tokenizer)
        stopMatcher = StopMatcher(stops: request.sampling.stopStrings)
        stopTokens = request.sampling.stopTokens.union(request.sampling.ignoreEOS ? [] : endOfGeneration)
        maxTokens = request.sampling.maxTokens
        sampling = request.sampling
    }

    /// A sequence continuing on this instance after prefill elsewhere: its KV for
    /// `handoff.tokens.dropLast()` is in `blocks`.
    init(handoff h: Handoff, blocks: [Int32], endOfGeneration: Set<Int32>) {
        id = h.id
        traceID = h.traceID
        tokens = h.tokens
        promptCount = h.promptCount
        computed = h.tokens.count - 1
        cachedTokens = h.cachedTokens
        self.blocks = blocks
        sampler = h.sampler
        decoder = h.decoder
        stopMatcher = h.stopMatcher
        sampling = h.sampling
        stopTokens = h.sampling.stopTokens.union(h.sampling.ignoreEOS ? [] : endOfGeneration)
        maxTokens = h.sampling.maxTokens
    }

    var generatedCount: Int { tokens.count - promptCount }
    /// Tokens still to run through the model before the next sample.
    var pending: Int { tokens.count - computed }
}
