import Serving
import Tokenizer

/// What the engine is asked to do for one HTTP request.
struct GenerationPlan: Sendable {
    var promptTokens: [Int32]
    var sampling: SamplingParameters
    var stream: Bool
    /// Streamed responses: end with a usage chunk (and send `"usage": null` before it).
    var includeUsage: Bool
    /// The request field holding the prompt, for error messages (`prompt` or `messages`).
    var promptParam: String
    /// OpenAI's `user` field, for session-affinity routing.
    var user: String?
}

/// Turns decoded OpenAI requests into engine requests, refusing what the server cannot serve
/// with the error OpenAI would give. Pure: no engine state is touched, so it is unit-testable.
struct RequestPlanner: Sendable {
    /// Names requests may use for the served model (the first is the one responses carry).
    let modelNames: [String]
    let tokenizer: BPETokenizer
    let chatTemplate: ChatTemplate
    /// Longest prompt plus completion: the model's context, or fewer if the KV cache is smaller
    /// (a single sequence larger than the cache could never finish).
    let tokenLimit: Int
    /// Legacy completions default to 16 new tokens (OpenAI's and vLLM's default).
    static let defaultCompletionTokens = 16

    func plan(_ request: CompletionRequest) throws(APIError) -> GenerationPlan {
        try checkModel(request.model)
        if let logprobs = request.logprobs, logprobs.isRequested {
            throw .unsupported(message: "logprobs are not supported by this server.", param: "logprobs")
        }
        if request.echo == true { throw .unsupported(message: "echo is not supported by this server.", param: "echo") }
        if let bestOf = request.bestOf, bestOf != 1 {
            throw .unsupported(message: "best_of other than 1 is not supported by this server.", param: "best_of")
        }
        if let suffix = request.suffix, !suffix.isEmpty {
            throw .unsupported(message: "suffix is not supported by this server.", param: "suffix")
        }
        let tokens: [Int32]
        switch request.prompt {
        case let .text(text):
            if text.isEmpty { throw .invalidRequest(message: "The prompt must not be empty.", param: "prompt") }
            tokens = tokenizer.encode(text)
        case let .tokens(ids):
            let vocab = tokenizer.vocabularySize
            if let bad = ids.first(where: { $0 < 0 || Int($0) >= vocab }) {
                throw .invalidRequest(message: "Token id \(bad) is out of range for this model's vocabulary of \(vocab).",
                                      param: "prompt", code: "invalid_value")
            }
            tokens = ids
        case let .batch(count):
            throw .unsupported(message: "Batched prompts (\(count) prompts) are not supported; send one prompt per request.",
                               param: "prompt")
        }
        if tokens.isEmpty { throw .invalidRequest(message: "The prompt must not be empty.", param: "prompt") }
        return try finish(tokens: tokens, common: request.common, maxTokens: request.common.maxTokens,
                          defaultMaxTokens: Self.defaultCompletionTokens, stopTokens: [], promptParam: "prompt")
    }

    func plan(_ request: ChatCompletionRequest) throws(APIError) -> GenerationPlan {
        try checkModel(request.model)
        if let logprobs = request.logprobs, logprobs.isRequested {
            throw .unsupported(message: "logprobs are not supported by this server.", param: "logprobs")
        }
        if let top = request.topLogprobs, top < 0 || top > 20 {
            throw .invalidRequest(message: "Invalid value for 'top_logprobs': \(top). It must be between 0 and 20.",
                                  param: "top_logprobs", code: "invalid_value")
        }
        if let top = request.topLogprobs, top > 0 {
            throw .unsupported(message: "top_logprobs is not supported by this server.", param: "top_logprobs")
        }
        if request.hasTools { throw .unsupported(message: "Tool calling is not supported by this server.", param: "tools") }
        if let format = request.responseFormatType, format != "text" {
            throw .unsupported(message: "response_format '\(format)' is not supported; only 'text' is.", param: "response_format")
        }
        if request.messages.isEmpty {
            throw .invalidRequest(message: "'messages' must contain at least one message.", param: "messages", code: "empty_array")
        }
        var messages: [ChatMessage] = []
        for (i, m) in request.messages.enumerated() {
            let role: String
            switch m.role {
            case "system", "user", "assistant": role = m.role
            // OpenAI's newer name for system instructions.
            case "developer": role = "system"
            default:
                throw .invalidRequest(message: "Invalid value for 'messages[\(i)].role': '\(m.role)'. Supported roles are "
                                      + "'system', 'developer', 'user' and 'assistant'.",
                                      param: "messages[\(i)].role", code: "invalid_value")
            }
            messages.append(ChatMessage(role: role, content: m.content))
        }
        if let why = chatTemplate.unavailableReason {
            throw .invalidRequest(message: "This model cannot serve chat completions: \(why).", param: "messages",
                                  code: "chat_template_unavailable")
        }
        let tokens = chatTemplate.encode(messages, with: tokenizer, addGenerationPrompt: true)
        let stopTokens = request.common.ignoreEOS ? [] : chatTemplate.stopTokens
        let maxTokens = request.maxCompletionTokens ?? request.common.maxTokens
        let param = request.maxCompletionTokens != nil ? "max_completion_tokens" : "max_tokens"
        return try finish(tokens: tokens, common: request.common, maxTokens: maxTokens, maxTokensParam: param,
                          defaultMaxTokens: nil, stopTokens: stopTokens, promptParam: "messages")
    }

    private func checkModel(_ name: String?) throws(APIError) {
        if let name, !modelNames.contains(name) { throw .modelNotFound(name) }
    }

    /// Checks the shared fields, and that the prompt and the requested completion fit in the
    /// context (an absent `max_tokens` takes what is left, up to `defaultMaxTokens`).
    private func finish(tokens: [Int32], common: CommonParameters, maxTokens: Int?, maxTokensParam: String = "max_tokens",
                        defaultMaxTokens: Int?, stopTokens: Set<Int32>, promptParam: String) throws(APIError) -> GenerationPlan {
        if let n = common.n, n != 1 {
            throw .unsupported(message: "Only n=1 is supported by this server.", param: "n")
        }
        if common.includeUsage != nil && !common.stream {
            throw .invalidRequest(message: "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                                  param: "stream_options")
        }
        if common.logitBiasCount > 0 {
            throw .unsupported(message: "logit_bias is not supported by this server.", param: "logit_bias")
        }
        var p = SamplingParameters()
        if let t = common.temperature {
            guard t.isFinite, t >= 0, t <= 2 else { throw Self.outOfRange("temperature", t, "between 0 and 2") }
            p.temperature = Float(t)
        }
        if let topP = common.topP {
            guard topP.isFinite, topP > 0, topP <= 1 else { throw Self.outOfRange("top_p", topP, "greater than 0 and at most 1") }
            p.topP = Float(topP)
        }
        if let topK = common.topK {
            // -1 disables top-k in vLLM's API; 0 does in ours.
            guard topK >= -1 else { throw Self.outOfRange("top_k", Double(topK), "-1 (off), 0 (off) or positive") }
            p.topK = max(0, topK)
        }
        if let minP = common.minP {
            guard minP.isFinite, minP >= 0, minP <= 1 else { throw Self.outOfRange("min_p", minP, "between 0 and 1") }
            p.minP = Float(minP)
        }
        if let f = common.frequencyPenalty {
            guard f.isFinite, abs(f) <= 2 else { throw Self.outOfRange("frequency_penalty", f, "between -2 and 2") }
            p.frequencyPenalty = Float(f)
        }
        if let pr = common.presencePenalty {
            guard pr.isFinite, abs(pr) <= 2 else { throw Self.outOfRange("presence_penalty", pr, "between -2 and 2") }
            p.presencePenalty = Float(pr)
        }
        if let r = common.repetitionPenalty {
            guard r.isFinite, r > 0, r <= 10 else { throw Self.outOfRange("repetition_penalty", r, "greater than 0 and at most 10") }
            p.repetitionPenalty = Float(r)
        }
        p.seed = common.seed.map { UInt64(bitPattern: $0) }
        if common.stop.count > 16 {
            throw .invalidRequest(message: "At most 16 stop sequences are supported.", param: "stop", code: "invalid_value")
        }
        // An empty stop string would end every completion at once; OpenAI ignores them too.
        p.stopStrings = common.stop.filter { !$0.isEmpty }
        p.stopTokens = stopTokens
        p.ignoreEOS = common.ignoreEOS

        if tokens.count >= tokenLimit {
            throw .contextLengthExceeded(promptTokens: tokens.count, limit: tokenLimit, param: promptParam)
        }
        let room = tokenLimit - tokens.count
        if let maxTokens {
            guard maxTokens >= 1 else {
                throw .invalidRequest(message: "Invalid '\(maxTokensParam)': integer below minimum value. Expected a value >= 1, "
                                      + "but got \(maxTokens) instead.", param: maxTokensParam, code: "integer_below_min_value")
            }
            guard maxTokens <= room else {
                throw .contextLengthExceeded(promptTokens: tokens.count, completionTokens: maxTokens, limit: tokenLimit,
                                             param: maxTokensParam, promptParam: promptParam)
            }
            p.maxTokens = maxTokens
        } else {
            p.maxTokens = min(defaultMaxTokens ?? room, room)
        }
        if let why = p.validationError() { throw .invalidRequest(message: why, param: nil) }
        return GenerationPlan(promptTokens: tokens, sampling: p, stream: common.stream,
                              includeUsage: common.includeUsage ?? false, promptParam: promptParam, user: common.user)
    }

    private static func outOfRange(_ param: String, _ value: Double, _ range: String) -> APIError {
        .invalidRequest(message: "Invalid value for '\(param)': \(value). It must be \(range).", param: param, code: "invalid_value")
    }
}
