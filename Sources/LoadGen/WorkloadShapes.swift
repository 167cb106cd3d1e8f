// The generators of the three workloads. Every random draw comes from a `SeededRandom` forked
// from the workload seed, so a seed reproduces the same prompts and lengths everywhere.

/// ShareGPT-shaped multi-turn chats.
///
/// Published figures used:
/// - vLLM (Kwon et al., "Efficient Memory Management for Large Language Model Serving with
///   PagedAttention", SOSP 2023, §6.1 and Fig. 11): ShareGPT prompts are on average 8.4x and
///   answers 5.8x longer than Alpaca's, with a higher variance; the means are about 161 prompt
///   and 338 answer tokens per request.
/// - CachedAttention (Gao et al., "Cost-Efficient Large Language Model Serving for Multi-turn
///   Conversations with CachedAttention", USENIX ATC 2024, §2): 73% of ShareGPT conversations
///   have more than one turn.
///
/// Our choices (no published figure): lengths are log-normal, which has the long right tail of
/// Fig. 11, with shape 1.0 for prompts and 0.8 for answers; a multi-turn conversation has
/// 2 + Geometric turns with 4.5 turns on average, at most 16, so about 3.6 turns overall.
public enum ShareGPTShape {
    public static let meanPromptTokens = 161.0
    public static let meanAnswerTokens = 338.0
    public static let promptSigma = 1.0
    public static let answerSigma = 0.8
    public static let multiTurnFraction = 0.73
    public static let meanMultiTurnTurns = 4.5
    public static let maxTurns = 16
    /// Chat-template tokens around one message (role markers and separators).
    static let messageOverhead = 8

    /// Turns of one conversation.
    static func turns(_ rng: inout SeededRandom) -> Int {
        if rng.unit() >= multiTurnFraction { return 1 }
        // Failures before the first success of a Bernoulli(p) trial, with mean (1-p)/p = mean - 2.
        let p = 1 / (meanMultiTurnTurns - 1)
        var turns = 2
        while turns < maxTurns && rng.unit() >= p { turns += 1 }
        return turns
    }

    static func sessions(_ o: WorkloadOptions) -> [Session] {
        var rng = SeededRandom(seed: o.seed).fork(1)
        var sessions: [Session] = []
        var total = 0
        // Bounded: every session holds at least one request.
        while total < o.requests {
            let topic = rng.int(in: 0...(Corpus.paragraphs.count - 1))
            let planned = turns(&rng)
            var users: [String] = [], maxTokens: [Int] = []
            var used = 0
            for turn in 0..<planned {
                var user = scaled(rng.logNormal(mean: meanPromptTokens, sigma: promptSigma), o, min: 4)
                var answer = scaled(rng.logNormal(mean: meanAnswerTokens, sigma: answerSigma), o, min: 4)
                let overhead = 2 * messageOverhead
                if used + user + answer + overhead > o.budget {
                    guard turn == 0 else { break }
                    // A first turn longer than the context is shrunk to fit, as datasets are filtered.
                    user = max(4, min(user, o.budget / 2 - overhead))
                    answer = max(4, min(answer, o.budget - user - overhead))
                }
                used += user + answer + overhead
                users.append(Corpus.userMessage(words: o.tokens.words(forTokens: user), topic: topic, firstTurn: turn == 0, rng: &rng))
                maxTokens.append(answer)
            }
            let id = sessions.count
            sessions.append(Session(id: id, group: id, shape: .chat(users: users), maxTokens: maxTokens))
            total += maxTokens.count
        }
        return trim(sessions, to: o.requests)
    }
}

/// LooGLE-shaped long-document questions.
///
/// LooGLE (Li et al., "LooGLE: Can Long-Context Language Models Understand Long Contexts?",
/// 2023) asks many questions about each long document. Its documents are far longer than the
/// default model's context, so here, as issue 10 asks, a document has 2K to 6K tokens (uniform),
/// cut to fit the context. Our choices: 3 to 6 questions per document (uniform); answers
/// log-normal with mean 48 tokens and shape 0.6, at most 256 (short-answer questions). Questions arrive
/// interleaved: documents are taken three at a time and the questions of the three are shuffled.
public enum LooGLEShape {
    public static let documentTokens = 2000...6000
    public static let questionsPerDocument = 3...6
    public static let meanAnswerTokens = 48.0
    public static let answerSigma = 0.6
    public static let window = 3
    static let instruction = "Read the report below and answer the question that follows it.\n\n"

    /// Document lengths after scaling, bounded by the context (questions and answers need room).
    static func documentRange(_ o: WorkloadOptions) -> ClosedRange<Int> {
        let hi = min(scaled(Double(documentTokens.upperBound), o, min: 16), o.budget - 400)
        let lo = min(scaled(Double(documentTokens.lowerBound), o, min: 16), hi)
        return max(16, lo)...max(16, hi)
    }

    static func sessions(_ o: WorkloadOptions) -> [Session] {
        var rng = SeededRandom(seed: o.seed).fork(2)
        let range = documentRange(o)
        var sessions: [Session] = []
        var document = 0
        // Bounded: every window adds at least three questions.
        while sessions.count < o.requests {
            var windowQuestions: [(doc: Int, prompt: String, answer: Int)] = []
            for _ in 0..<window {
                let tokens = rng.int(in: range)
                let doc = Corpus.document(words: o.tokens.words(forTokens: tokens), rng: &rng)
                let head = instruction + doc.text + "\n\nQuestion: "
                for _ in 0..<rng.int(in: questionsPerDocument) {
                    let answer = min(scaled(rng.logNormal(mean: meanAnswerTokens, sigma: answerSigma), o, min: 4), 256)
                    windowQuestions.append((document, head + Corpus.documentQuestion(doc, rng: &rng) + "\nAnswer:", answer))
                }
                document += 1
            }
            windowQuestions.shuffle(using: &rng)
            for q in windowQuestions {
                sessions.append(Session(id: sessions.count, group: q.doc, shape: .trace(head: q.prompt, appends: []), maxTokens: [q.answer]))
            }
        }
        return trim(sessions, to: o.requests)
    }
}

/// ReAct-shaped agent traces.
///
/// ReAct (Yao et al., "ReAct: Synergizing Reasoning and Acting in Language Models", ICLR 2023)
/// prompts a model with an instruction and worked examples, then lets it alternate Thought,
/// Action (Search, Lookup, Finish) and Observation; every step is a new request whose prompt is
/// the previous one plus the model's thought and action and the tool's observation. Our choices:
/// 3 to 7 steps per trace (uniform); thought and action log-normal with mean 40 tokens and
/// shape 0.4; observations log-normal with mean 60 tokens and shape 0.5.
public enum ReActShape {
    public static let steps = 3...7
    public static let meanThoughtTokens = 40.0
    public static let thoughtSigma = 0.4
    public static let meanObservationTokens = 60.0
    public static let observationSigma = 0.5

    static func sessions(_ o: WorkloadOptions) -> [Session] {
        var rng = SeededRandom(seed: o.seed).fork(3)
        let prefix = Corpus.agentPrefix
        let prefixTokens = o.tokens.tokens(in: prefix)
        var sessions: [Session] = []
        var total = 0
        while total < o.requests {
            let topic = rng.int(in: 0...(Corpus.paragraphs.count - 1))
            let other = (topic + rng.int(in: 1...(Corpus.paragraphs.count - 1))) % Corpus.paragraphs.count
            let head = prefix + "Question: " + Corpus.agentTask(topic: topic, other: other, rng: &rng) + "\nThought:"
            var used = prefixTokens + 32
            var maxTokens: [Int] = [], appends: [String] = []
            let planned = rng.int(in: steps)
            for step in 0..<planned {
                let thought = scaled(rng.logNormal(mean: meanThoughtTokens, sigma: thoughtSigma), o, min: 4)
                let observed = scaled(rng.logNormal(mean: meanObservationTokens, sigma: observationSigma), o, min: 4)
                if used + thought > o.budget && step > 0 { break }
                maxTokens.append(max(4, min(thought, o.budget - used)))
                used += thought + observed + 8
                if step < planned - 1 {
                    let seen = Corpus.observation(words: o.tokens.words(forTokens: observed), topic: rng.int(in: 0...1) == 0 ? topic : other, rng: &rng)
                    appends.append("\nObservation: " + seen + "\nThought:")
                }
            }
            appends = Array(appends.prefix(maxTokens.count - 1))
            let id = sessions.count
            sessions.append(Session(id: id, group: id, shape: .trace(head: head, appends: appends), maxTokens: maxTokens))
            total += maxTokens.count
        }
        return trim(sessions, to: o.requests)
    }
}
