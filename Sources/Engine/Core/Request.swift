import Model
import Tokenizer

/// Identifies a request within an engine.
public typealias RequestID = UInt64

/// A generation request as the engine sees it: tokens in, sampling parameters. Data only.
public struct GenerationRequest: Sendable {
    public var id: RequestID
    public var promptTokens: [Int32]
    public var sampling: SamplingParameters
    /// On a prefill instance: the decode instance the sequence goes to after its first token
    /// (opaque to the engine; it travels in the `Handoff`).
    public var handoffTo: String?

    public init(id: RequestID, promptTokens: [Int32], sampling: SamplingParameters, handoffTo: String? = nil) {
        self.id = id
        self.promptTokens = promptTokens
        self.sampling = sampling
        self.handoffTo = handoffTo
    }
}

/// Why a sequence stopped.
public enum FinishReason: String, Sendable, Codable, Equatable {
    /// End-of-generation token, stop token or stop string.
    case stop
    /// `maxTokens` reached or the context is full.
    case length
    /// The client went away or the request was cancelled.
    case abort
}

/// What one engine step produced for one request. Data only.
public struct RequestOutput: Sendable, Equatable {
    public var id: RequestID
    /// The sampled token, if one was sampled for this request in this step.
    public var token: Int32?
    /// Text that became final in this step (UTF-8 complete, stop strings withheld).
    public var text: String
    public var finishReason: FinishReason?
    public var promptTokens: Int
    /// Prompt tokens whose KV came from the cache instead of being computed.
    public var cachedTokens: Int
    public var generatedTokens: Int

    public init(id: RequestID, token: Int32?, text: String, finishReason: FinishReason?, promptTokens: Int,
                cachedTokens: Int, generatedTokens: Int) {
        self.id = id
        self.token = token
        self.text = text
        self.finishReason = finishReason
        self.promptTokens = promptTokens
        self.cachedTokens = cachedTokens
        self.generatedTokens = generatedTokens
    }
}

/// Why the engine refused a request.
public enum EngineError: Error, CustomStringConvertible, Equatable {
    case emptyPrompt
    case promptTooLong(tokens: Int, limit: Int)
    case invalidSampling(String)
    case duplicateRequest(RequestID)
    case kvCacheTooSmall(needed: Int, capacity: Int)
    case model(ModelError)
    case shuttingDown

    public var description: String {
        switch self {
        case .emptyPrompt: "the prompt is empty"
        case let .promptTooLong(tokens, limit):
            "the prompt has \(tokens) tokens; this model's context holds \(limit) tokens including the completion"
        case let .invalidSampling(why): why
        case let .duplicateRequest(id): "request \(id) is already running"
        case let .kvCacheTooSmall(needed, capacity):
            "the request needs \(needed) KV blocks but the cache holds only \(capacity)"
        case let .model(error): error.description
        case .shuttingDown: "the server is shutting down"
        }
    }
}

/// What an instance does with a request (the paper's PD roles).
public enum InstanceRole: String, Sendable, Codable, CaseIterable {
    /// Prefill and decode in one engine.
    case colocated
    /// Prefill only: after the first token, the sequence is handed to a decode instance.
    case prefill
    /// Decode only: continues sequences whose prompt KV another instance computed.
    case decode
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

    /// Tokens whose KV the blocks hold.
    public var computedTokens: Int { tokens.count - 1 }

    /// Rebuilds a handoff that crossed a process boundary: the sampler, detokenizer and stop
    /// matcher continue from the saved state, so outputs are the same as in one process.
    public init(id: RequestID, tokens: [Int32], promptCount: Int, cachedTokens: Int, sampling: SamplingParameters,
                randomState: [UInt64], decoderPending: [UInt8], stopHeld: String, tokenizer: BPETokenizer) {
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
         sampler: Sampler, decoder: StreamingDecoder, stopMatcher: StopMatcher, blocks: [Int32], handoffTo: String?) {
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
