/// The serving contract: what a front end and the instances behind it exchange, with no
/// knowledge of weights or kernels.

/// Identifies a request within an engine.
public typealias RequestID = UInt64

/// A request as a front end hands it to a backend: tokens, sampling, and what follows the
/// request through every hop. Data only.
public struct ServingRequest: Sendable {
    public var promptTokens: [Int32]
    public var sampling: SamplingParameters
    /// The id the edge gave the request (e.g. `chatcmpl-…`): carried to every instance that
    /// serves it, for logs and aborts. Empty when the caller has none.
    public var traceID: String
    /// The session the request belongs to (OpenAI's `user`, or an `x-session-id` header), for
    /// session-affinity routing.
    public var session: String?

    public init(promptTokens: [Int32], sampling: SamplingParameters, traceID: String = "", session: String? = nil) {
        self.promptTokens = promptTokens
        self.sampling = sampling
        self.traceID = traceID
        self.session = session
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
    case invalidToken(Int32, vocabularySize: Int)
    /// The model could not run a step (a bug or a corrupt model, not the request's fault).
    case modelFailure(String)
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
        case let .invalidToken(t, vocab): "token id \(t) is outside the vocabulary (0..<\(vocab))"
        case let .modelFailure(why): why
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

/// Caching with disaggregation, in the paper's stages.
public enum PDMode: String, Sendable, CaseIterable, Codable {
    /// Prefill transfers KV to decode; nothing is cached.
    case basic
    /// The prefill instance caches prompts in its own prompt tree.
    case caching1 = "caching-1"
    /// Also the decode instance caches (transfer_with_insert); later turns send only the delta.
    case caching2 = "caching-2"
    /// Also, when a request finishes, decode sends the generated tokens' KV back to prefill, so
    /// the next turn finds the whole history in the prefill instance's cache.
    case caching3 = "caching-3"

    public var prefillCaches: Bool { self != .basic }
    public var decodeCaches: Bool { self == .caching2 || self == .caching3 }
}
