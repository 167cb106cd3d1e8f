import GGUF
import Kernels
import MemPool
import Model
import Testing
import Tokenizer
@testable import Engine

/// The scheduler on a tiny random-weight model: batching, preemption and aborts must not
/// change what a request produces, and must give every block back.
@Suite("Continuous batching engine", .serialized)
struct EngineCoreTests {
    static let loaded: LoadedModel = {
        var options = ModelOptions()
        options.maxBatchTokens = 64
        options.maxContext = 256
        options.maxLogitRows = 16
        return try! LoadedModel(file: GGUFFile(bytes: SyntheticModel.gguf()), name: "synthetic", options: options, threads: 2)
    }()

    static func engine(blocks: Int, budget: Int = 64, caching: Bool = true, coldBlocks: Int = 0) -> EngineCore {
        var config = SchedulerConfiguration()
        config.tokenBudget = budget
        config.prefixCaching = caching
        return EngineCore(model: loaded.transformer, tokenizer: loaded.tokenizer,
                          memPool: try! loaded.makeMemPool(hotBlocks: blocks, coldBlocks: coldBlocks), configuration: config)
    }

    static func request(_ id: RequestID, promptLength: Int, maxTokens: Int = 12) -> GenerationRequest {
        var p = SamplingParameters.greedy
        p.maxTokens = maxTokens
        p.ignoreEOS = true
        let prompt = (0..<promptLength).map { Int32(3 + (Int($0) * 31 + Int(id) * 17) % 250) }
        return GenerationRequest(id: id, promptTokens: prompt, sampling: p)
    }

    /// Runs until idle; returns each request's generated tokens and finish reason.
    static func drain(_ engine: EngineCore) throws -> [RequestID: (tokens: [Int32], finish: FinishReason?)] {
        var result: [RequestID: (tokens: [Int32], finish: FinishReason?)] = [:]
        var steps = 0
        while engine.hasWork {
            for out in try engine.step() {
                var r = result[out.id] ?? ([], nil)
                if let t = out.token { r.tokens.append(t) }
                r.finish = out.finishReason
                result[out.id] = r
            }
            steps += 1
            precondition(steps < 10_000, "engine made no progress")
        }
        return result
    }

    @Test("requests batched together produce what they produce alone")
    func batchingInvariance() throws {
        let requests = [Self.request(1, promptLength: 5), Self.request(2, promptLength: 40),
                        Self.request(3, promptLength: 90), Self.request(4, promptLength: 17)]
        var alone: [RequestID: [Int32]] = [:]
        for r in requests {
            let e = Self.engine(blocks: 64)
            try e.add(r)
            alone[r.id] = try Self.drain(e)[r.id]!.tokens
        }
        let e = Self.engine(blocks: 64, budget: 32)
        for r in requests { try e.add(r) }
        let together = try Self.drain(e)
        for r in requests {
            #expect(together[r.id]!.tokens == alone[r.id]!, "request \(r.id)")
            #expect(together[r.id]!.finish == .length)
            #expect(together[r.id]!.tokens.count == 12)
        }
        #expect(e.memPool.stats.hot.used == 0)
    }

    @Test("running out of KV blocks preempts and recomputes without changing output")
    func preemption() throws {
        let requests = (1...6).map { Self.request(RequestID($0), promptLength: 20 + $0 * 7, maxTokens: 20) }
        let roomy = Self.engine(blocks: 128)
        for r in requests { try roomy.add(r) }
        let expected = try Self.drain(roomy)
        // 12 blocks hold ~4 sequences of this size: the rest must wait or be preempted.
        let tight = Self.engine(blocks: 12, budget: 48)
        for r in requests { try tight.add(r) }
        let got = try Self.drain(tight)
        for r in requests { #expect(got[r.id]!.tokens == expected[r.id]!.tokens, "request \(r.id)") }
        #expect(tight.memPool.stats.hot.used == 0)
    }

    @Test("abort frees the request's blocks and others continue")
    func abort() throws {
        let e = Self.engine(blocks: 64)
        try e.add(Self.request(1, promptLength: 30, maxTokens: 50))
        try e.add(Self.request(2, promptLength: 10, maxTokens: 5))
        _ = try e.step()
        _ = try e.step()
        #expect(e.abort(1))
        #expect(!e.abort(99))
        let rest = try Self.drain(e)
        #expect(rest[1] == nil)
        #expect(rest[2]!.finish == .length)
        #expect(e.memPool.stats.hot.used == 0)
    }

    @Test("requests that can never run are refused up front")
    func admissionErrors() throws {
        let e = Self.engine(blocks: 8)
        #expect(throws: EngineError.emptyPrompt) { try e.add(GenerationRequest(id: 1, promptTokens: [], sampling: .greedy)) }
        #expect(throws: EngineError.self) { try e.add(Self.request(2, promptLength: 300)) }
        var bad = Self.request(3, promptLength: 4)
        bad.sampling.topP = 2
        #expect(throws: EngineError.self) { try e.add(bad) }
        bad = Self.request(4, promptLength: 4)
        bad.promptTokens[0] = 100_000
        #expect(throws: EngineError.self) { try e.add(bad) }
        // 8 blocks x 16 tokens cannot hold a 200-token prompt.
        #expect(throws: EngineError.kvCacheTooSmall(needed: 13, capacity: 8)) { try e.add(Self.request(5, promptLength: 200)) }
        try e.add(Self.request(6, promptLength: 4, maxTokens: 2))
        #expect(throws: EngineError.duplicateRequest(6)) { try e.add(Self.request(6, promptLength: 4)) }
        #expect(try Self.drain(e)[6]!.tokens.count == 2)
    }

    @Test("stop strings end generation and are not emitted")
    func stopStrings() throws {
        let e = Self.engine(blocks: 32)
        var r = Self.request(1, promptLength: 8, maxTokens: 40)
        try e.add(r)
        var text = ""
        while e.hasWork { for o in try e.step() { text += o.text } }
        // Stop at a 2-character string that occurs in the free-running output.
        let chars = Array(text)
        guard chars.count >= 6 else { return }
        let stop = String(chars[3...4])
        let e2 = Self.engine(blocks: 32)
        r.sampling.stopStrings = [stop]
        try e2.add(r)
        var stopped = ""
        var finish: FinishReason?
        while e2.hasWork { for o in try e2.step() { stopped += o.text; finish = o.finishReason ?? finish } }
        #expect(finish == .stop)
        #expect(!stopped.contains(stop))
        #expect(text.hasPrefix(stopped))
    }

    /// Runs one request to the end; returns its tokens and the cached-token count it reported.
    static func run(_ e: EngineCore, _ r: GenerationRequest) throws -> (tokens: [Int32], cached: Int) {
        try e.add(r)
        var tokens: [Int32] = []
        var cached = -1
        while e.hasWork {
            for o in try e.step() where o.id == r.id {
                if let t = o.token { tokens.append(t) }
                cached = o.cachedTokens
            }
        }
        return (tokens, cached)
    }

    @Test("a repeated prompt reuses its cached blocks and produces the same tokens")
    func repeatedPromptHits() throws {
        let e = Self.engine(blocks: 64)
        let r = Self.request(1, promptLength: 70)
        let first = try Self.run(e, r)
        #expect(first.cached == 0)
        var again = r
        again.id = 2
        let second = try Self.run(e, again)
        // 70 prompt tokens: 4 whole blocks (64 tokens) come from the cache.
        #expect(second.cached == 64)
        #expect(second.tokens == first.tokens)
        #expect(e.memPool.stats.hot.used == 0)
        #expect(e.memPool.stats.hot.cached > 0)
    }

    @Test("a prompt's blocks are cached chunk by chunk, and a request sharing it waits for them instead of computing its own copy")
    func sharedPrefixWaitsForTheRunningPrefill() throws {
        let e = Self.engine(blocks: 64, budget: 64)
        let r1 = Self.request(1, promptLength: 150)
        var r2 = r1
        r2.id = 2
        try e.add(r1)
        try e.add(r2)
        // The first chunk (64 tokens, 4 blocks) is shared before the prompt is done.
        _ = try e.step()
        #expect(e.memPool.cachedBlockCount(r1.promptTokens) == 4)
        var tokens: [RequestID: [Int32]] = [:], cached: [RequestID: Int] = [:]
        var steps = 0
        while e.hasWork && steps < 1000 {
            for o in try e.step() {
                if let t = o.token { tokens[o.id, default: []].append(t) }
                cached[o.id] = o.cachedTokens
            }
            steps += 1
        }
        // 150 tokens: 9 whole blocks; the last token is always computed.
        #expect(cached[1] == 0 && cached[2] == 144)
        #expect(tokens[1] == tokens[2] && tokens[1]?.count == 12)
        #expect(e.memPool.stats.hot.used == 0)
    }

    @Test("multi-turn conversation: caching on gives the same output as caching off, and hits the history")
    func conversationCachingEqualsNoCaching() throws {
        let on = Self.engine(blocks: 64), off = Self.engine(blocks: 64, caching: false)
        var history: [Int32] = Self.request(1, promptLength: 37).promptTokens
        for turn in 0..<4 {
            var r = Self.request(RequestID(10 + turn), promptLength: 1, maxTokens: 9)
            r.promptTokens = history
            let a = try Self.run(on, r)
            let b = try Self.run(off, r)
            #expect(a.tokens == b.tokens, "turn \(turn)")
            #expect(b.cached == 0)
            if turn > 0 {
                // Everything but the partial last block of the previous turn's KV is reused.
                #expect(a.cached >= (history.count - 9 - 8) / 16 * 16 - 16, "turn \(turn): cached \(a.cached) of \(history.count)")
                #expect(a.cached > 0)
            }
            history += a.tokens + (0..<8).map { Int32(40 + $0 + turn) }
        }
        #expect(on.memPool.stats.hot.used == 0)
    }

    @Test("cache under memory pressure: evicted prefixes are recomputed, output unchanged")
    func evictionKeepsOutput() throws {
        let tight = Self.engine(blocks: 12), roomy = Self.engine(blocks: 128, caching: false)
        for i in 0..<10 {
            let r = Self.request(RequestID(i % 5 + 1), promptLength: 60 + (i % 5) * 10, maxTokens: 6)
            #expect(try Self.run(tight, r).tokens == Self.run(roomy, r).tokens)
        }
        let stats = tight.memPool.stats
        #expect(stats.hot.used == 0)
        #expect(stats.evictions + stats.demotions > 0)
    }

    @Test("a cold tier keeps evicted prefixes: they come back by swap-in, output unchanged")
    func coldTierSwapsIn() throws {
        let tiered = Self.engine(blocks: 12, coldBlocks: 64), roomy = Self.engine(blocks: 128, caching: false)
        var cachedSeen = 0
        for i in 0..<10 {
            let r = Self.request(RequestID(i % 5 + 1), promptLength: 60 + (i % 5) * 10, maxTokens: 6)
            let got = try Self.run(tiered, r)
            #expect(got.tokens == (try Self.run(roomy, r)).tokens)
            if i >= 5 { cachedSeen += got.cached }
        }
        let stats = tiered.memPool.stats
        #expect(stats.demotions > 0, "evicted blocks went to the cold tier")
        #expect(stats.swapIns > 0, "and came back from it")
        #expect(cachedSeen > 0)
        #expect(stats.hot.used == 0 && stats.cold.used == 0)
    }

    @Test("a sequence that outgrows the whole KV pool ends with .length instead of stalling")
    func outgrowsPool() throws {
        let e = Self.engine(blocks: 4)
        let r = try Self.run(e, Self.request(1, promptLength: 20, maxTokens: 500))
        // 4 blocks hold KV for 64 positions: 20 prompt + 44 generated tokens, and the 45th is
        // sampled from the last position's logits (its own KV is never needed).
        #expect(r.tokens.count == 45)
        #expect(e.memPool.stats.hot.used == 0)
    }

    @Test("a lone sequence short of blocks held outside it (a transfer) waits for them, then runs")
    func waitsForHeldBlocks() throws {
        let e = Self.engine(blocks: 8)
        // Six of eight blocks held as a transfer holds them; the request needs three.
        let held = try #require(e.memPool.allocate(6))
        try e.add(Self.request(1, promptLength: 40, maxTokens: 4))
        for _ in 0..<3 {
            #expect(try e.step().isEmpty)
            #expect(e.stalled && e.hasWork)
        }
        e.memPool.release(held)
        let r = try #require(try Self.drain(e)[1])
        #expect(r.tokens.count == 4 && r.finish == .length)
        #expect(!e.stalled && e.memPool.stats.hot.used == 0)
    }
}
