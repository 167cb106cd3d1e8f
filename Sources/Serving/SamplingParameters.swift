/// How the next token is chosen and when generation stops (OpenAI / llama.cpp semantics).
public struct SamplingParameters: Sendable, Equatable, Codable {
    /// 0 means greedy (argmax); otherwise logits are divided by it.
    public var temperature: Float = 1
    /// Keep the k most likely tokens (0: off).
    public var topK: Int = 0
    /// Keep the smallest set of most likely tokens whose probability sums to at least p (1: off).
    public var topP: Float = 1
    /// Drop tokens less likely than minP × the most likely one's probability (0: off).
    public var minP: Float = 0
    /// HF-style: logits of tokens already in the context are divided (if > 0) or multiplied by it.
    public var repetitionPenalty: Float = 1
    /// OpenAI-style: subtract penalty × (times generated so far).
    public var frequencyPenalty: Float = 0
    /// OpenAI-style: subtract penalty once if generated at all.
    public var presencePenalty: Float = 0
    /// Seed of this request's random stream; nil picks one from the system.
    public var seed: UInt64?
    /// Most new tokens.
    public var maxTokens: Int = 256
    /// Generation ends before any of these strings; they are not part of the output.
    public var stopStrings: [String] = []
    /// Token ids that end generation (in addition to the model's end-of-turn tokens).
    public var stopTokens: Set<Int32> = []
    /// Keep going past the model's end-of-generation tokens.
    public var ignoreEOS: Bool = false

    public init() {}

    public static var greedy: SamplingParameters {
        var p = SamplingParameters()
        p.temperature = 0
        return p
    }

    public var isGreedy: Bool { temperature <= 0 || topK == 1 }

    /// Why these parameters cannot be used, or nil.
    public func validationError() -> String? {
        if !temperature.isFinite || temperature < 0 { return "temperature must be a finite number >= 0" }
        if topK < 0 { return "top_k must be >= 0" }
        if !(topP > 0 && topP <= 1) { return "top_p must be in (0, 1]" }
        if !(minP >= 0 && minP <= 1) { return "min_p must be in [0, 1]" }
        if !(repetitionPenalty > 0) || !repetitionPenalty.isFinite { return "repetition_penalty must be > 0" }
        if !frequencyPenalty.isFinite || abs(frequencyPenalty) > 2 { return "frequency_penalty must be in [-2, 2]" }
        if !presencePenalty.isFinite || abs(presencePenalty) > 2 { return "presence_penalty must be in [-2, 2]" }
        if maxTokens < 1 { return "max_tokens must be >= 1" }
        if stopStrings.count > 16 { return "at most 16 stop strings" }
        if stopStrings.contains(where: \.isEmpty) { return "stop strings must not be empty" }
        return nil
    }
}
