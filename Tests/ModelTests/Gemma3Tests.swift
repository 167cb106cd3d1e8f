import Engine
import Foundation
import GGUF
import Kernels
import Testing
@testable import Model

/// Gemma 3's block on synthetic models: the sliding window's reach, its two attention paths
/// (decode straight from the blocks, prefill through gathered K/V and GEMM) agreeing, and the
/// configuration llama.cpp would derive.
@Suite("Gemma 3 on synthetic models")
struct Gemma3Tests {
    static func shape(layers: Int = 3, window: Int = 8) -> SyntheticModel.Shape {
        var s = SyntheticModel.Shape()
        s.architecture = "gemma3"
        s.layers = layers
        s.heads = 4
        s.kvHeads = 1
        s.slidingWindow = window
        return s
    }

    static func model(_ shape: SyntheticModel.Shape, denseMinRows: Int = 8) throws -> Transformer {
        var options = ModelOptions()
        options.maxBatchTokens = 128
        options.maxContext = 128
        options.denseMinRows = denseMinRows
        options.denseWeights = true
        return try Transformer(file: GGUFFile(bytes: SyntheticModel.gguf(shape)), options: options, pool: ThreadPool(threadCount: 2))
    }

    @Test("configuration: window, every 6th layer global, local RoPE base, √hidden embedding, 1/√headDim")
    func configuration() throws {
        let c = try ModelRegistry.configuration(from: GGUFFile(bytes: SyntheticModel.gguf(Self.shape(layers: 12))))
        #expect(c.architecture == "gemma3" && c.ropeStyle == .halves && c.slidingWindow == 8)
        #expect((0..<12).filter { !c.isSlidingWindowLayer($0) } == [5, 11])
        #expect(c.localRopeBase == 10_000 && c.embeddingScale == Float(64).squareRoot())
        #expect(c.attentionScale == 1 / Float(16).squareRoot())
    }

    @Test("a token beyond every sliding window's reach changes nothing; with a global layer it does")
    func windowReach() async throws {
        // 3 sliding layers of window 8: position p sees tokens back to p - 3·7.
        let sliding = try Self.model(Self.shape(layers: 3, window: 8))
        let global = try Self.model(Self.shape(layers: 6, window: 8))
        var prompt: [Int32] = (0..<40).map { Int32(3 + ($0 * 7919) % 250) }
        var changed = prompt
        changed[0] = prompt[0] == 5 ? 6 : 5
        let runs = try await offPool {
            try [sliding, global].flatMap { m in
                try [prompt, changed].map { try Runner(model: m).run($0, greedy: 0).logits }
            }
        }
        #expect(runs[0] == runs[1], "sliding layers must not see position 0 from position 39")
        #expect(ForwardTests.maxDiff(runs[2], runs[3]) > 1e-4, "layer 5 is global and sees position 0")
        // And a token inside the reach does change them.
        prompt[30] = prompt[30] == 5 ? 6 : 5
        let near = try await offPool { try Runner(model: sliding).run(prompt, greedy: 0).logits }
        #expect(ForwardTests.maxDiff(near, runs[0]) > 1e-4)
    }

    @Test("prefill at once, in chunks, and token by token agree across the window", arguments: [1, 5, 16])
    func chunking(chunk: Int) async throws {
        let m = try Self.model(Self.shape(layers: 6, window: 8))
        let prompt: [Int32] = (0..<37).map { Int32(3 + ($0 * 104_729) % 250) }
        let (whole, chunked) = try await offPool {
            (try Runner(model: m).run(prompt, greedy: 4), try Runner(model: m).run(prompt, greedy: 4, chunk: chunk, scattered: true))
        }
        #expect(ForwardTests.maxDiff(whole.logits, chunked.logits) < 2e-4)
        #expect(whole.tokens == chunked.tokens)
    }

    @Test("Q, K and V (and gate/up) in different formats load as separate projections and agree")
    func mixedFormats() async throws {
        var mixed = Self.shape(layers: 2)
        mixed.weightType = .q8_0
        mixed.mixedType = .q4_0
        let m = try Self.model(mixed, denseMinRows: 1 << 20)
        let dense = try Self.model(mixed, denseMinRows: 1)
        let prompt: [Int32] = (0..<12).map { Int32(3 + $0 * 17) }
        let (q, d) = try await offPool {
            (try Runner(model: m).run(prompt, greedy: 2), try Runner(model: dense).run(prompt, greedy: 2))
        }
        #expect(ForwardTests.maxDiff(q.logits, d.logits) < 2e-4)
        var llama = SyntheticModel.Shape()
        llama.weightType = .q8_0
        llama.mixedType = .q4_1
        #expect(try ForwardTests.model(llama).weights.decodeBytesPerStep > 0)
    }

    @Test("cached prefixes stay reusable across the window: caching on equals caching off, and hits")
    func prefixCachingAcrossTheWindow() async throws {
        var options = ModelOptions()
        options.maxBatchTokens = 64
        options.maxContext = 256
        let model = try LoadedModel(file: GGUFFile(bytes: SyntheticModel.gguf(Self.shape(layers: 6, window: 8))), name: "gemma",
                                    options: options, threads: 2)
        func engine(caching: Bool) throws -> EngineCore {
            var config = SchedulerConfiguration()
            config.prefixCaching = caching
            return EngineCore(model: model.transformer, tokenizer: model.tokenizer, memPool: try model.makeMemPool(hotBlocks: 64),
                              configuration: config)
        }
        func run(_ e: EngineCore, _ id: RequestID, _ prompt: [Int32]) throws -> (tokens: [Int32], cached: Int) {
            var p = SamplingParameters.greedy
            p.maxTokens = 6
            p.ignoreEOS = true
            try e.add(GenerationRequest(id: id, promptTokens: prompt, sampling: p))
            var tokens: [Int32] = [], cached = -1, steps = 0
            while e.hasWork && steps < 500 {
                for o in try e.step() where o.id == id {
                    if let t = o.token { tokens.append(t) }
                    cached = o.cachedTokens
                }
                steps += 1
            }
            return (tokens, cached)
        }
        let shared: [Int32] = (0..<70).map { Int32(3 + ($0 * 31) % 250) }
        let results = try await offPool { () throws -> [(tokens: [Int32], cached: Int)] in
            let on = try engine(caching: true), off = try engine(caching: false)
            return [try run(on, 1, shared + [7, 8, 9]), try run(on, 2, shared + [10, 11]),
                    try run(off, 3, shared + [10, 11])]
        }
        // 70 shared tokens: 4 whole blocks (64 tokens, far beyond the window of 8) are reused.
        #expect(results[1].cached == 64)
        #expect(results[1].tokens == results[2].tokens && results[2].cached == 0)
    }
}
