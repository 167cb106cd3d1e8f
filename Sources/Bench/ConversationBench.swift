import Engine
import Foundation
import MemPool
import Model

/// `memserve bench conversations`: many concurrent multi-turn chats (ShareGPT-shaped: a shared
/// system prompt, each turn resending the whole history plus a new user message), replayed with
/// prefix caching on and off on the same engine configuration.
public enum ConversationBench {
    public struct Result: Codable, Sendable {
        public var conversations: Int
        public var turns: Int
        public var requests: Int
        /// Generated tokens per second over the whole run.
        public var tokens_per_s_on: Double
        public var tokens_per_s_off: Double
        /// Prompt tokens served from the cache / all prompt tokens, caching on.
        public var cache_hit_rate: Double
        public var ttft_p50_ms_on: Double
        public var ttft_p50_ms_off: Double
        public var ttft_p99_ms_on: Double
        public var ttft_p99_ms_off: Double
        public var jct_avg_ms_on: Double
        public var jct_avg_ms_off: Double
        public var prompt_tokens: Int
        public var generated_tokens: Int
    }

    public struct Workload: Sendable {
        public var conversations = 32
        public var turns = 4
        public var systemTokens = 128
        public var userTokens = 48
        public var answerTokens = 32
        public var seed: UInt64 = 5
        public init() {}
    }

    struct Run {
        var seconds: Double
        var ttft: [Double]
        var jct: [Double]
        var prompt = 0
        var cached = 0
        var generated = 0
    }

    public static func run(model loaded: LoadedModel, workload w: Workload = Workload(), kvMegabytes: Int = 1024) throws -> Result {
        let on = try replay(loaded, w, caching: true, kvMegabytes: kvMegabytes)
        let off = try replay(loaded, w, caching: false, kvMegabytes: kvMegabytes)
        return Result(
            conversations: w.conversations, turns: w.turns, requests: w.conversations * w.turns,
            tokens_per_s_on: Double(on.generated) / on.seconds, tokens_per_s_off: Double(off.generated) / off.seconds,
            cache_hit_rate: Double(on.cached) / Double(max(1, on.prompt)),
            ttft_p50_ms_on: percentile(on.ttft, 0.5), ttft_p50_ms_off: percentile(off.ttft, 0.5),
            ttft_p99_ms_on: percentile(on.ttft, 0.99), ttft_p99_ms_off: percentile(off.ttft, 0.99),
            jct_avg_ms_on: on.jct.reduce(0, +) / Double(max(1, on.jct.count)),
            jct_avg_ms_off: off.jct.reduce(0, +) / Double(max(1, off.jct.count)),
            prompt_tokens: on.prompt, generated_tokens: on.generated)
    }

    /// All conversations start at once; each sends its next turn as soon as the previous answer
    /// is complete (a closed loop of `conversations` clients).
    static func replay(_ loaded: LoadedModel, _ w: Workload, caching: Bool, kvMegabytes: Int) throws -> Run {
        var config = SchedulerConfiguration()
        config.prefixCaching = caching
        let engine = EngineCore(model: loaded.transformer, tokenizer: loaded.tokenizer,
                                memPool: try loaded.makeMemPool(hotBlocks: loaded.blocks(forMegabytes: kvMegabytes)),
                                configuration: config)
        let vocab = UInt64(loaded.transformer.configuration.vocabularySize)
        var random = RandomSource(seed: w.seed)
        func text(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32(3 + random.next() % (vocab - 3)) } }
        let system = text(w.systemTokens)
        // The same user messages in both runs: drawn up front.
        let messages = (0..<w.conversations).map { _ in (0..<w.turns).map { _ in text(w.userTokens) } }
        var history = [[Int32]](repeating: system, count: w.conversations)
        var turn = [Int](repeating: 0, count: w.conversations)
        var submitted = [UInt64](repeating: 0, count: w.conversations)
        var firstSeen = [Bool](repeating: false, count: w.conversations)
        var answer = [[Int32]](repeating: [], count: w.conversations)
        var params = SamplingParameters.greedy
        params.maxTokens = w.answerTokens
        params.ignoreEOS = true
        var run = Run(seconds: 0, ttft: [], jct: [])

        func submit(_ i: Int) throws {
            history[i] += messages[i][turn[i]]
            submitted[i] = DispatchTime.now().uptimeNanoseconds
            firstSeen[i] = false
            answer[i] = []
            try engine.add(GenerationRequest(id: RequestID(i * 1000 + turn[i]), promptTokens: history[i], sampling: params))
        }
        let start = DispatchTime.now().uptimeNanoseconds
        for i in 0..<w.conversations { try submit(i) }
        while engine.hasWork {
            for out in try engine.step() {
                let i = Int(out.id) / 1000
                let now = DispatchTime.now().uptimeNanoseconds
                if let t = out.token {
                    answer[i].append(t)
                    run.generated += 1
                    if !firstSeen[i] {
                        firstSeen[i] = true
                        run.ttft.append(Double(now - submitted[i]) / 1e6)
                        run.prompt += out.promptTokens
                        run.cached += out.cachedTokens
                    }
                }
                if out.finishReason != nil {
                    run.jct.append(Double(now - submitted[i]) / 1e6)
                    history[i] += answer[i]
                    turn[i] += 1
                    if turn[i] < w.turns { try submit(i) }
                }
            }
        }
        run.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return run
    }
}

func percentile(_ xs: [Double], _ p: Double) -> Double {
    let s = xs.sorted()
    guard !s.isEmpty else { return .nan }
    return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
}
