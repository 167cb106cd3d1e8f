import Cluster
import Engine
import Foundation
import GGUF
import MemPool
import Model
import Testing

/// Prefill/decode disaggregation in one process, on a tiny random-weight model: every mode
/// gives the colocated engine's greedy output, moves what it should, and leaks no block.
@Suite("PD disaggregation in process", .serialized)
struct PDClusterTests {
    static let base: LoadedModel = {
        var options = ModelOptions()
        options.maxBatchTokens = 64
        options.maxContext = 512
        options.maxLogitRows = 16
        return try! LoadedModel(file: GGUFFile(bytes: SyntheticModel.gguf()), name: "synthetic", options: options, threads: 1)
    }()

    static func cluster(_ mode: PDMode, prefillBlocks: Int = 96, decodeBlocks: Int = 96) throws -> PDCluster {
        let p = base.sibling(threads: 1), d = base.sibling(threads: 1)
        return PDCluster(prefillModel: p, prefillPool: try p.makeMemPool(hotBlocks: prefillBlocks),
                         decodeModel: d, decodePool: try d.makeMemPool(hotBlocks: decodeBlocks), mode: mode)
    }

    static func params(_ n: Int) -> SamplingParameters {
        var p = SamplingParameters.greedy
        p.maxTokens = n
        p.ignoreEOS = true
        return p
    }

    static func collect(_ stream: AsyncThrowingStream<RequestOutput, any Error>) async throws -> (tokens: [Int32], cached: Int, finish: FinishReason?) {
        var tokens: [Int32] = []
        var cached = 0
        var finish: FinishReason?
        for try await o in stream {
            if let t = o.token { tokens.append(t) }
            if tokens.count == 1 { cached = o.cachedTokens }
            finish = o.finishReason ?? finish
        }
        return (tokens, cached, finish)
    }

    /// Four turns of one conversation; each turn's prompt is the whole history so far.
    static func conversation(submit: ([Int32]) throws -> AsyncThrowingStream<RequestOutput, any Error>) async throws -> [(tokens: [Int32], cached: Int)] {
        var history: [Int32] = (0..<45).map { Int32(3 + ($0 * 37) % 250) }
        var turns: [(tokens: [Int32], cached: Int)] = []
        for turn in 0..<4 {
            let r = try await collect(try submit(history))
            #expect(r.finish == .length)
            turns.append((r.tokens, r.cached))
            history += r.tokens + (0..<11).map { Int32(20 + $0 * 3 + turn) }
        }
        return turns
    }

    static func waitIdle(_ c: PDCluster) async throws {
        for _ in 0..<400 {
            let p = c.prefill.stats, d = c.decode.stats
            if p.hot.used == 0 && d.hot.used == 0 && p.running + p.waiting + d.running + d.waiting == 0 { return }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test("every mode reproduces the colocated greedy output", arguments: PDMode.allCases)
    func sameOutputAsColocated(mode: PDMode) async throws {
        let colocated = EngineService(model: Self.base.sibling(threads: 1), memPool: try Self.base.makeMemPool(hotBlocks: 96))
        defer { colocated.shutdown() }
        let expected = try await Self.conversation { try colocated.submit(promptTokens: $0, sampling: Self.params(10)).1 }

        let c = try Self.cluster(mode)
        defer { c.shutdown() }
        let got = try await Self.conversation { try c.submit(promptTokens: $0, sampling: Self.params(10)).1 }
        #expect(got.map(\.tokens) == expected.map(\.tokens))

        try await Self.waitIdle(c)
        let s = c.transferStats
        #expect(s.handoffs == 4)
        #expect(c.prefill.stats.hot.used == 0 && c.decode.stats.hot.used == 0, "no block leaks")
        switch mode {
        case .basic:
            #expect(got.allSatisfy { $0.cached == 0 })
            #expect(s.blocksSkipped == 0 && c.prefill.stats.hot.cached == 0 && c.decode.stats.hot.cached == 0)
        case .caching1:
            #expect(got.dropFirst().allSatisfy { $0.cached > 0 }, "prefill reuses earlier prompts")
            #expect(s.blocksSkipped == 0 && c.decode.stats.hot.cached == 0)
        case .caching2:
            #expect(s.blocksSkipped > 0, "later turns send decode only the delta")
            #expect(s.blocksReturned == 0)
        case .caching3:
            #expect(s.blocksSkipped > 0)
            #expect(s.blocksReturned > 0, "decode sends answers' KV back")
            // The next turn finds the previous answer cached at prefill: more than the prompt alone gives.
            for (prev, next) in zip(got.map(\.cached), got.dropFirst().map(\.cached)) { #expect(next > prev) }
        }
    }

    @Test("PD-Caching-3 caches more of each turn at prefill than PD-Caching-1")
    func caching3BeatsCaching1() async throws {
        let c1 = try Self.cluster(.caching1), c3 = try Self.cluster(.caching3)
        defer { c1.shutdown(); c3.shutdown() }
        let a = try await Self.conversation { try c1.submit(promptTokens: $0, sampling: Self.params(24)).1 }
        let b = try await Self.conversation { try c3.submit(promptTokens: $0, sampling: Self.params(24)).1 }
        #expect(a.map(\.tokens) == b.map(\.tokens))
        #expect(b.map(\.cached).reduce(0, +) > a.map(\.cached).reduce(0, +))
    }

    @Test("a decode instance short of blocks back-pressures prefill; everything completes")
    func backPressure() async throws {
        // Decode has 8 blocks: one sequence (7-8 blocks at its longest) at a time, so handoffs
        // arriving meanwhile (4-6 blocks each) must wait; 6 arrive together.
        let c = try Self.cluster(.caching2, decodeBlocks: 8)
        defer { c.shutdown() }
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<6 {
                let prompt = (0..<(60 + i * 5)).map { Int32(3 + ($0 * 13 + i * 7) % 250) }
                let stream = try c.submit(promptTokens: prompt, sampling: Self.params(40)).1
                group.addTask { try await Self.collect(stream).tokens.count }
            }
            var counts: [Int] = []
            for try await n in group { counts.append(n) }
            return counts
        }
        #expect(results == Array(repeating: 40, count: 6))
        #expect(c.transferStats.deferredHandoffs > 0)
        try await Self.waitIdle(c)
        #expect(c.prefill.stats.hot.used == 0 && c.decode.stats.hot.used == 0)
    }

    @Test("abort stops a request that is decoding on the other instance")
    func abortAfterHandoff() async throws {
        let c = try Self.cluster(.caching2)
        defer { c.shutdown() }
        // The decode engine stops at a gate once it runs the handed-off sequence, so the abort
        // lands while the request is decoding there however slowly this task is scheduled.
        let gate = DispatchSemaphore(value: 0)
        let (reached, reachedContinuation) = AsyncStream<Void>.makeStream()
        c.decode.enqueue { e in
            guard e.core.runningCount > 0 else { return false }
            reachedContinuation.finish()
            _ = gate.wait(timeout: .now() + 10)
            return true
        }
        let (id, stream) = try c.submit(promptTokens: Array(5..<70), sampling: Self.params(400))
        var n = 0
        for try await o in stream {
            if o.token != nil { n += 1 }
            if n == 1 && o.token != nil {
                for await _ in reached {}
                c.abort(id)
                gate.signal()
            }
        }
        #expect(n < 400, "the request stopped early")
        try await Self.waitIdle(c)
        #expect(c.prefill.stats.hot.used == 0 && c.decode.stats.hot.used == 0 && c.decode.stats.running == 0)
    }

    @Test("a client that disconnects mid-stream frees blocks on both instances")
    func cancelFreesBoth() async throws {
        let c = try Self.cluster(.caching3)
        defer { c.shutdown() }
        let stream = try c.submit(promptTokens: Array(5..<70), sampling: Self.params(300)).1
        var n = 0
        for try await o in stream where o.token != nil {
            n += 1
            if n == 3 { break }
        }
        try await Self.waitIdle(c)
        #expect(c.prefill.stats.hot.used == 0 && c.decode.stats.hot.used == 0)
        #expect(c.decode.stats.running == 0)
    }
}
