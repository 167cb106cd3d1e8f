import GGUF
import Kernels
import Testing
@testable import Model

/// Forward-pass invariants on tiny random-weight models (fixed seeds): the ways a step can be
/// cut up (batched, paged, chunked) must not change the numbers.
@Suite("Batched paged forward on synthetic models")
struct ForwardTests {
    static func model(_ shape: SyntheticModel.Shape = SyntheticModel.Shape(), denseMinRows: Int = 8) throws -> Transformer {
        let file = try GGUFFile(bytes: SyntheticModel.gguf(shape))
        var options = ModelOptions()
        options.maxBatchTokens = 256
        options.maxContext = 256
        options.denseMinRows = denseMinRows
        // Both paths (fp32 GEMM and quantized kernel) must exist for the tests to compare them.
        options.denseWeights = true
        return try Transformer(file: file, options: options, pool: ThreadPool(threadCount: 2))
    }

    static func prompt(_ n: Int, seed: Int) -> [Int32] {
        (0..<n).map { Int32(3 + ($0 * 7919 + seed * 104_729) % 250) }
    }

    static func maxDiff(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    @Test("several sequences in one step equal each run alone", arguments: [1, 8])
    func batchedEqualsSeparate(denseMinRows: Int) throws {
        let m = try Self.model(denseMinRows: denseMinRows)
        let prompts = [Self.prompt(5, seed: 1), Self.prompt(23, seed: 2), Self.prompt(1, seed: 3), Self.prompt(40, seed: 4)]
        var alone: [[Float]] = []
        for p in prompts { alone.append(try Runner(model: m).run(p, greedy: 0).logits) }

        let cache = TestKVCache(layout: m.kvLayout, blocks: 64)
        var batch = ForwardBatch()
        for p in prompts {
            batch.add(tokens: p, startPosition: 0, blockTable: cache.allocate(m.kvLayout.blocks(forTokens: p.count)), wantsLogits: true)
        }
        let out = try m.forward(batch, kv: cache.view)
        #expect(out.rows == prompts.count)
        for i in prompts.indices {
            #expect(Self.maxDiff(Array(out.row(i)), alone[i]) < 2e-4)
        }
    }

    @Test("decode tokens and prefill chunks mixed in one step")
    func mixedDecodeAndPrefill() throws {
        let m = try Self.model()
        let a = Self.prompt(9, seed: 5), b = Self.prompt(30, seed: 6)
        let refA = try Runner(model: m).run(a + [77], greedy: 0).logits
        let refB = try Runner(model: m).run(b, greedy: 0).logits

        let cache = TestKVCache(layout: m.kvLayout, blocks: 64)
        let tableA = cache.allocate(2), tableB = cache.allocate(2)
        var first = ForwardBatch()
        first.add(tokens: a, startPosition: 0, blockTable: tableA, wantsLogits: false)
        first.add(tokens: b[0..<12], startPosition: 0, blockTable: tableB, wantsLogits: false)
        #expect(try m.forward(first, kv: cache.view).rows == 0)
        var second = ForwardBatch()
        second.add(tokens: [77], startPosition: 9, blockTable: tableA, wantsLogits: true)
        second.add(tokens: b[12...], startPosition: 12, blockTable: tableB, wantsLogits: true)
        let out = try m.forward(second, kv: cache.view)
        #expect(Self.maxDiff(Array(out.row(0)), refA) < 2e-4)
        #expect(Self.maxDiff(Array(out.row(1)), refB) < 2e-4)
    }

    @Test("scattered block tables equal contiguous ones")
    func pagedEqualsContiguous() throws {
        let m = try Self.model()
        let p = Self.prompt(70, seed: 7)
        let contiguous = try Runner(model: m).run(p, greedy: 6)
        let scattered = try Runner(model: m).run(p, greedy: 6, scattered: true)
        #expect(contiguous.tokens == scattered.tokens)
        #expect(Self.maxDiff(contiguous.logits, scattered.logits) == 0)
    }

    @Test("prefill in chunks equals prefill at once", arguments: [1, 3, 16, 17, 64])
    func chunkedEqualsWhole(chunk: Int) throws {
        let m = try Self.model()
        let p = Self.prompt(75, seed: 8)
        let whole = try Runner(model: m).run(p, greedy: 4)
        let chunked = try Runner(model: m).run(p, greedy: 4, chunk: chunk)
        #expect(Self.maxDiff(whole.logits, chunked.logits) < 2e-4)
        #expect(whole.tokens == chunked.tokens)
    }

    @Test("every weight format loads and agrees with F32 weights", arguments: [GGMLType.f16, .bf16, .q8_0, .q4_0, .q4_1])
    func formats(type: GGMLType) throws {
        var shape = SyntheticModel.Shape()
        shape.weightType = type
        let m = try Self.model(shape)
        let quantPath = try Runner(model: try Self.model(shape, denseMinRows: 1 << 20)).run(Self.prompt(20, seed: 9), greedy: 0).logits
        let densePath = try Runner(model: m).run(Self.prompt(20, seed: 9), greedy: 0).logits
        #expect(Self.maxDiff(quantPath, densePath) < 2e-4, "quantized kernel vs dequantized GEMM")
        #expect(densePath.allSatisfy { $0.isFinite })
    }

    @Test("Qwen2 (biases, NeoX RoPE, untied head) runs through the same code")
    func qwen2() throws {
        var shape = SyntheticModel.Shape()
        shape.architecture = "qwen2"
        shape.tiedEmbedding = false
        let m = try Self.model(shape)
        #expect(m.configuration.ropeStyle == .halves && m.configuration.attentionBias && !m.configuration.tiedEmbedding)
        let whole = try Runner(model: m).run(Self.prompt(33, seed: 10), greedy: 3)
        let chunked = try Runner(model: m).run(Self.prompt(33, seed: 10), greedy: 3, chunk: 5)
        #expect(Self.maxDiff(whole.logits, chunked.logits) < 2e-4)
    }

    @Test("bad batches are refused with errors, not crashes")
    func invalidBatches() throws {
        let m = try Self.model()
        let cache = TestKVCache(layout: m.kvLayout, blocks: 8)
        var badToken = ForwardBatch()
        badToken.add(tokens: [99_999], startPosition: 0, blockTable: cache.allocate(1), wantsLogits: true)
        #expect(throws: ModelError.invalidToken(99_999, vocabularySize: m.configuration.vocabularySize)) {
            try m.forward(badToken, kv: cache.view)
        }
        var noBlocks = ForwardBatch()
        noBlocks.add(tokens: Self.prompt(20, seed: 1), startPosition: 0, blockTable: [0], wantsLogits: true)
        #expect(throws: ModelError.self) { try m.forward(noBlocks, kv: cache.view) }
        var tooLong = ForwardBatch()
        tooLong.add(tokens: [5], startPosition: 256, blockTable: Array(repeating: 0, count: 17), wantsLogits: true)
        #expect(throws: ModelError.contextOverflow(position: 257, contextLength: 256)) { try m.forward(tooLong, kv: cache.view) }
    }
}

@Suite("Model loading errors")
struct LoadingTests {
    @Test("unknown architecture names the supported ones")
    func unknownArchitecture() throws {
        var shape = SyntheticModel.Shape()
        shape.architecture = "mamba"
        let file = try GGUFFile(bytes: SyntheticModel.gguf(shape))
        #expect(throws: ModelError.unsupportedArchitecture("mamba", supported: ["gemma3", "llama", "qwen2"])) {
            try ModelRegistry.configuration(from: file)
        }
    }

    @Test("missing tensor and wrong shapes are named")
    func missingTensor() throws {
        var w = GGUFWriter()
        let full = try GGUFFile(bytes: SyntheticModel.gguf())
        for key in full.metadataKeys { w.set(key, full.metadata[key]!) }
        for t in full.tensors where t.name != "blk.1.ffn_up.weight" {
            w.addTensor(name: t.name, type: t.type, dimensions: t.dimensions, data: Array(full.tensorData(t)))
        }
        let file = try GGUFFile(bytes: w.bytes())
        #expect(throws: ModelError.missingTensor("blk.1.ffn_up.weight")) {
            try Transformer(file: file, pool: ThreadPool(threadCount: 1))
        }
    }

    @Test("configuration of the synthetic Llama")
    func configuration() throws {
        let c = try ModelRegistry.configuration(from: GGUFFile(bytes: SyntheticModel.gguf()))
        #expect(c.layerCount == 2 && c.hiddenSize == 64 && c.headCount == 4 && c.kvHeadCount == 2 && c.headDim == 16)
        #expect(c.tiedEmbedding && c.ropeStyle == .adjacentPairs)
    }
}
