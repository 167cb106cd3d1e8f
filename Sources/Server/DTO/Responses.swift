// Response bodies in OpenAI's shapes. Fields OpenAI sends as explicit `null` (logprobs,
// finish_reason while streaming, usage on streamed chunks when usage was asked for) are
// encoded as null rather than left out, so strict clients see the same keys.

/// Token counts of one request.
public struct Usage: Codable, Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int
    public var promptTokensDetails: Details

    public struct Details: Codable, Sendable, Equatable {
        public var cachedTokens: Int
        enum CodingKeys: String, CodingKey { case cachedTokens = "cached_tokens" }
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
        case promptTokensDetails = "prompt_tokens_details"
    }

    public init(prompt: Int, completion: Int, cached: Int) {
        promptTokens = prompt
        completionTokens = completion
        totalTokens = prompt + completion
        promptTokensDetails = Details(cachedTokens: cached)
    }
}

/// A choice of one kind of completion object; `object` is the envelope's `object` field.
public protocol CompletionChoice: Encodable, Sendable {
    static var object: String { get }
}

/// The envelope OpenAI's completion objects share: `text_completion` (whole or streamed),
/// `chat.completion` and `chat.completion.chunk` differ only in their choices.
public struct CompletionObject<Choice: CompletionChoice>: Encodable, Sendable {
    public var id: String
    public var created: Int
    public var model: String
    public var systemFingerprint: String?
    public var choices: [Choice]
    /// `.none` leaves the key out (streamed chunks without usage), `.some(nil)` writes null
    /// (usage asked for, not yet known).
    public var usage: Usage??

    public init(id: String, created: Int, model: String, systemFingerprint: String?, choices: [Choice], usage: Usage??) {
        self.id = id
        self.created = created
        self.model = model
        self.systemFingerprint = systemFingerprint
        self.choices = choices
        self.usage = usage
    }

    enum CodingKeys: String, CodingKey {
        case id, object, created, model, choices, usage
        case systemFingerprint = "system_fingerprint"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(Choice.object, forKey: .object)
        try c.encode(created, forKey: .created)
        try c.encode(model, forKey: .model)
        try c.encodeIfPresent(systemFingerprint, forKey: .systemFingerprint)
        try c.encode(choices, forKey: .choices)
        if let usage { try c.encode(usage, forKey: .usage) }
    }
}

/// `text_completion`, whole or as one streamed chunk (same object type in both cases).
public typealias CompletionResponse = CompletionObject<TextChoice>
/// `chat.completion` (whole answer).
public typealias ChatCompletionResponse = CompletionObject<ChatChoice>
/// `chat.completion.chunk` (one streamed piece of the answer).
public typealias ChatCompletionChunk = CompletionObject<ChunkChoice>

public struct TextChoice: CompletionChoice {
    public static let object = "text_completion"
    public var index = 0
    public var text: String
    public var finishReason: String?

    enum CodingKeys: String, CodingKey {
        case index, text, logprobs
        case finishReason = "finish_reason"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(text, forKey: .text)
        try c.encodeNil(forKey: .logprobs)
        try c.encode(finishReason, forKey: .finishReason)
    }
}

public struct ChatChoice: CompletionChoice {
    public static let object = "chat.completion"
    public var index = 0
    public var message: AssistantMessage
    public var finishReason: String

    enum CodingKeys: String, CodingKey {
        case index, message, logprobs
        case finishReason = "finish_reason"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(message, forKey: .message)
        try c.encodeNil(forKey: .logprobs)
        try c.encode(finishReason, forKey: .finishReason)
    }

    public struct AssistantMessage: Encodable, Sendable {
        public var role = "assistant"
        public var content: String

        enum CodingKeys: String, CodingKey { case role, content, refusal }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(role, forKey: .role)
            try c.encode(content, forKey: .content)
            try c.encodeNil(forKey: .refusal)
        }
    }
}

public struct ChunkChoice: CompletionChoice {
    public static let object = "chat.completion.chunk"
    public var index = 0
    public var delta: Delta
    public var finishReason: String?

    enum CodingKeys: String, CodingKey {
        case index, delta, logprobs
        case finishReason = "finish_reason"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(delta, forKey: .delta)
        try c.encodeNil(forKey: .logprobs)
        try c.encode(finishReason, forKey: .finishReason)
    }

    /// What this chunk adds: the role on the first chunk, then content; empty on the last.
    public struct Delta: Encodable, Sendable {
        public var role: String?
        public var content: String?
    }
}

/// `GET /v1/models`.
public struct ModelList: Codable, Sendable {
    public var object = "list"
    public var data: [ModelCard]
}

/// One served model.
public struct ModelCard: Codable, Sendable {
    public var id: String
    public var object = "model"
    public var created: Int
    public var ownedBy = "memserve"
    /// Longest prompt plus completion, in tokens.
    public var maxModelLen: Int

    enum CodingKeys: String, CodingKey {
        case id, object, created
        case ownedBy = "owned_by"
        case maxModelLen = "max_model_len"
    }
}

/// `GET /health`.
public struct HealthResponse: Codable, Sendable {
    public var status: String
    public var model: String
    public var engine: EngineStatsBody
}

/// Engine counts as `/health` reports them (snake_case, like the rest of the API).
public struct EngineStatsBody: Codable, Sendable {
    public var running: Int
    public var waiting: Int
    public var kvBlocksHot: Tier
    public var kvBlocksCold: Tier
    public var evictions: Int
    public var demotions: Int
    public var cachedBlocks: Int

    public struct Tier: Codable, Sendable {
        public var capacity: Int
        public var free: Int
        public var used: Int
        public var cached: Int
    }

    enum CodingKeys: String, CodingKey {
        case running, waiting, evictions, demotions
        case kvBlocksHot = "kv_blocks_hot"
        case kvBlocksCold = "kv_blocks_cold"
        case cachedBlocks = "cached_blocks"
    }
}

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
public struct ErrorResponse: Codable, Sendable, Equatable {
    public var error: Detail

    public struct Detail: Codable, Sendable, Equatable {
        public var message: String
        public var type: String
        public var param: String?
        public var code: String?

        enum CodingKeys: String, CodingKey { case message, type, param, code }

        public init(message: String, type: String, param: String?, code: String?) {
            self.message = message
            self.type = type
            self.param = param
            self.code = code
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(message, forKey: .message)
            try c.encode(type, forKey: .type)
            try c.encode(param, forKey: .param)
            try c.encode(code, forKey: .code)
        }
    }
}
