import Model
import Serving
import Tokenizer

/// A generation request as the engine sees it: tokens in, sampling parameters. Data only.
public struct GenerationRequest: Sendable {
    public var id: RequestID
    public var promptTokens: [Int32]
    public var sampling: SamplingParameters
    /// On a prefill instance: the decode instance the sequence goes to after its first token
    /// (opaque to the engine; it travels in the `Handoff`).
    public var handoffTo: String?
    /// The edge's id of the request (`ServingRequest.traceID`), for logs across instances.
    public var traceID: String

    public init(id: RequestID, promptTokens: [Int32], sampling: SamplingParameters, handoffTo: String? = nil,
                traceID: String = "") {
        self.traceID = traceID
        self.id = id
        self.promptTokens = promptTokens
        self.sampling = sampling
        self.handoffTo = handoffTo
    }
}

/// A sequence leaving a prefill instance after its first token: everything a decode instance
/// needs to continue it, except the KV bytes, which move block by block (`blocks` is the
/// prefill side's table; the prefill instance holds those blocks until released).
public struct Handoff: Sendable {
    public var id: RequestID
    /// Prompt plus the first generated token; KV exists for all but the last.
    public var tokens: [Int32]
    public var promptCount: Int
    public var cachedTokens: Int
    public var sampling: SamplingParameters
    public var sampler: Sampler
    public var decoder: StreamingDecoder
    public var stopMatcher: StopMatcher
    public var blocks: [Int32]
    /// The decode instance the request named (`GenerationRequest.handoffTo`).
    public var handoffTo: String?
    /// The edge's id of the request, for logs on every instance it visits.
    public var traceID: String

    /// Tokens whose KV the blocks hold.
    public var computedTokens: Int { tokens.count - 1 }

    /// Rebuilds a handoff that crossed a process boundary: the sampler, detokenizer and stop
    /// matcher continue from the saved state, so outputs are the same as in one process.
    public init(id: RequestID, tokens: [Int32], promptCount: Int, cachedTokens: Int, sampling: SamplingParameters,
                randomState: [UInt64], decoderPending: [UInt8], stopHeld: String, tokenizer: BPETokenizer, traceID: String = "") {
        self.traceID = traceID
        self.id = id
        self.tokens = tokens
        self.promptCount = promptCount
        self.cachedTokens = cachedTokens
        self.sampling = sampling
        sampler = Sampler(parameters: sampling, prompt: tokens[0..<promptCount], generated: tokens[promptCount...],
                          randomState: randomState)
        decoder = StreamingDecoder(tokenizer: tokenizer, pending: decoderPending)
        stopMatcher = StopMatcher(stops: sampling.stopStrings, held: stopHeld)
        blocks = []
    }

    init(id: RequestID, tokens: [Int32], promptCount: Int, cachedTokens: Int, sampling: SamplingParameters,
         sampler: Sampler, decoder: StreamingDecoder, stopMatcher: StopMatcher, blocks: [Int32], handoffTo: String?,
         traceID: String = "") {
        self.traceID = traceID
        self.handoffTo = handoffTo
        self.id = id
        self.tokens = tokens
        self.promptCount = promptCount
        self.cachedTokens = cachedTokens
        self.sampling = sampling
        self.sampler = sampler
        self.decoder = decoder
        self.stopMatcher = stopMatcher
        self.blocks = blocks
    }
}

/// A finished sequence's tokens and blocks (retained for the receiver), for sending the KV of
/// a whole conversation turn back to a prefill instance (PD-Caching-3).
public struct FinishedSequence: Sendable {
    public var id: RequestID
    /// Tokens whose KV is in `blocks` (prompt and generated, but the last sampled token).
    public var tokens: [Int32]
    public var blocks: [Int32]
}
