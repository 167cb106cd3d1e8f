// Request bodies of the OpenAI-compatible endpoints, decoded leniently where OpenAI is
// (unknown top-level fields are ignored, numbers and nulls as the API accepts them) and
// strictly where a silent misreading would change the answer (types, roles, content parts).

/// `POST /v1/completions`.
public struct CompletionRequest: Decodable, Sendable {
    public var model: String?
    public var prompt: Prompt
    public var common: CommonParameters
    /// Legacy completions: an integer number of top logprobs; only absent, null or false is served.
    public var logprobs: LogprobsRequest?
    public var echo: Bool?
    public var bestOf: Int?
    public var suffix: String?

    enum CodingKeys: String, CodingKey {
        case model, prompt, logprobs, echo, suffix
        case bestOf = "best_of"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        prompt = try c.decode(Prompt.self, forKey: .prompt)
        logprobs = try c.decodeIfPresent(LogprobsRequest.self, forKey: .logprobs)
        echo = try c.decodeIfPresent(Bool.self, forKey: .echo)
        bestOf = try c.decodeIfPresent(Int.self, forKey: .bestOf)
        suffix = try c.decodeIfPresent(String.self, forKey: .suffix)
        common = try CommonParameters(from: decoder)
    }
}

/// `POST /v1/chat/completions`.
public struct ChatCompletionRequest: Decodable, Sendable {
    public var model: String?
    public var messages: [Message]
    public var common: CommonParameters
    public var maxCompletionTokens: Int?
    public var logprobs: LogprobsRequest?
    public var topLogprobs: Int?
    /// Present and non-empty tool definitions are refused: the server has no tool calling.
    public var hasTools: Bool
    public var responseFormatType: String?

    enum CodingKeys: String, CodingKey {
        case model, messages, logprobs, tools, functions
        case maxCompletionTokens = "max_completion_tokens"
        case topLogprobs = "top_logprobs"
        case responseFormat = "response_format"
    }

    struct ResponseFormat: Decodable { var type: String }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        messages = try c.decode([Message].self, forKey: .messages)
        maxCompletionTokens = try c.decodeIfPresent(Int.self, forKey: .maxCompletionTokens)
        logprobs = try c.decodeIfPresent(LogprobsRequest.self, forKey: .logprobs)
        topLogprobs = try c.decodeIfPresent(Int.self, forKey: .topLogprobs)
        let tools = try c.decodeIfPresent([AnyJSON].self, forKey: .tools) ?? []
        let functions = try c.decodeIfPresent([AnyJSON].self, forKey: .functions) ?? []
        hasTools = !tools.isEmpty || !functions.isEmpty
        responseFormatType = try c.decodeIfPresent(ResponseFormat.self, forKey: .responseFormat)?.type
        common = try CommonParameters(from: decoder)
    }

    /// One chat turn.
    public struct Message: Decodable, Sendable {
        public var role: String
        public var content: String

        enum CodingKeys: String, CodingKey { case role, content }

        public init(role: String, content: String) {
            self.role = role
            self.content = content
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            role = try c.decode(String.self, forKey: .role)
            // Required and non-null: OpenAI allows a null content only beside tool calls, which
            // this server does not take, and an empty turn would be served as if it had text.
            if try c.decodeNil(forKey: .content) {
                throw DecodingError.valueNotFound(MessageContent.self, .init(
                    codingPath: c.codingPath + [CodingKeys.content],
                    debugDescription: "expected a string or an array of content parts"))
            }
            content = try c.decode(MessageContent.self, forKey: .content).text
        }
    }
}

/// Fields both endpoints share (sampling, streaming, stop conditions).
public struct CommonParameters: Decodable, Sendable {
    public var maxTokens: Int?
    public var temperature: Double?
    public var topP: Double?
    public var topK: Int?
    public var minP: Double?
    public var frequencyPenalty: Double?
    public var presencePenalty: Double?
    public var repetitionPenalty: Double?
    public var seed: Int64?
    public var stop: [String]
    public var n: Int?
    public var stream: Bool
    public var includeUsage: Bool?
    public var ignoreEOS: Bool
    public var logitBiasCount: Int
    /// OpenAI's end-user id; session-affinity routing keys on it.
    public var user: String?

    enum CodingKeys: String, CodingKey {
        case temperature, seed, stop, n, stream, user
        case maxTokens = "max_tokens"
        case topP = "top_p"
        case topK = "top_k"
        case minP = "min_p"
        case frequencyPenalty = "frequency_penalty"
        case presencePenalty = "presence_penalty"
        case repetitionPenalty = "repetition_penalty"
        case streamOptions = "stream_options"
        case ignoreEOS = "ignore_eos"
        case logitBias = "logit_bias"
    }

    struct StreamOptions: Decodable {
        var includeUsage: Bool?
        enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens)
        temperature = try c.decodeIfPresent(Double.self, forKey: .temperature)
        topP = try c.decodeIfPresent(Double.self, forKey: .topP)
        topK = try c.decodeIfPresent(Int.self, forKey: .topK)
        minP = try c.decodeIfPresent(Double.self, forKey: .minP)
        frequencyPenalty = try c.decodeIfPresent(Double.self, forKey: .frequencyPenalty)
        presencePenalty = try c.decodeIfPresent(Double.self, forKey: .presencePenalty)
        repetitionPenalty = try c.decodeIfPresent(Double.self, forKey: .repetitionPenalty)
        seed = try c.decodeIfPresent(Int64.self, forKey: .seed)
        stop = try c.decodeIfPresent(StringOrArray.self, forKey: .stop)?.values ?? []
        n = try c.decodeIfPresent(Int.self, forKey: .n)
        stream = try c.decodeIfPresent(Bool.self, forKey: .stream) ?? false
        user = try c.decodeIfPresent(String.self, forKey: .user)
        includeUsage = try c.decodeIfPresent(StreamOptions.self, forKey: .streamOptions).map { $0.includeUsage ?? false }
        ignoreEOS = try c.decodeIfPresent(Bool.self, forKey: .ignoreEOS) ?? false
        logitBiasCount = try c.decodeIfPresent([String: Double].self, forKey: .logitBias)?.count ?? 0
    }
}

/// `prompt`: a string, an array of one string, an array of token ids, or an array of one such array.
public enum Prompt: Decodable, Sendable, Equatable {
    case text(String)
    case tokens([Int32])
    /// Several prompts in one request (refused: one choice per request).
    case batch(Int)

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let text = try? c.decode(String.self) { self = .text(text); return }
        if let texts = try? c.decode([String].self) {
            switch texts.count {
            case 0: self = .tokens([])
            case 1: self = .text(texts[0])
            default: self = .batch(texts.count)
            }
            return
        }
        if let ids = try? c.decode([Int32].self) { self = .tokens(ids); return }
        if let batches = try? c.decode([[Int32]].self) {
            self = batches.count == 1 ? .tokens(batches[0]) : .batch(batches.count)
            return
        }
        throw DecodingError.typeMismatch(Prompt.self, .init(
            codingPath: decoder.codingPath,
            debugDescription: "expected a string, an array of strings, or an array of token ids"))
    }
}

/// `stop`: one string or an array of strings.
struct StringOrArray: Decodable {
    var values: [String]

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let one = try? c.decode(String.self) {
            values = [one]
        } else if let many = try? c.decode([String].self) {
            values = many
        } else {
            throw DecodingError.typeMismatch(StringOrArray.self, .init(
                codingPath: decoder.codingPath, debugDescription: "expected a string or an array of strings"))
        }
    }
}

/// `logprobs`: a boolean (chat) or an integer (legacy completions).
public enum LogprobsRequest: Decodable, Sendable, Equatable {
    case flag(Bool)
    case count(Int)

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let flag = try? c.decode(Bool.self) {
            self = .flag(flag)
        } else if let count = try? c.decode(Int.self) {
            self = .count(count)
        } else {
            throw DecodingError.typeMismatch(LogprobsRequest.self, .init(
                codingPath: decoder.codingPath, debugDescription: "expected a boolean or an integer"))
        }
    }

    /// Whether the client asked for log probabilities, which the server does not compute.
    public var isRequested: Bool {
        switch self {
        case let .flag(on): on
        case .count: true
        }
    }
}

/// Message `content`: a string, or an array of `{"type": "text", "text": ...}` parts.
struct MessageContent: Decodable {
    var text: String

    struct Part: Decodable {
        var type: String
        var text: String?
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            text = s
            return
        }
        guard let parts = try? c.decode([Part].self) else {
            throw DecodingError.typeMismatch(MessageContent.self, .init(
                codingPath: decoder.codingPath, debugDescription: "expected a string or an array of content parts"))
        }
        var joined = ""
        for part in parts {
            guard part.type == "text", let t = part.text else {
                throw DecodingError.dataCorrupted(.init(
                    codingPath: decoder.codingPath,
                    debugDescription: "content parts of type '\(part.type)' are not supported; only 'text' parts are"))
            }
            joined += t
        }
        text = joined
    }
}

/// Any JSON value, decoded only to check that a field is present and well-formed.
struct AnyJSON: Decodable {
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { return }
        if (try? c.decode(Bool.self)) != nil || (try? c.decode(Double.self)) != nil || (try? c.decode(String.self)) != nil {
            return
        }
        if (try? c.decode([AnyJSON].self)) != nil || (try? c.decode([String: AnyJSON].self)) != nil { return }
        throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unreadable value"))
    }
}
