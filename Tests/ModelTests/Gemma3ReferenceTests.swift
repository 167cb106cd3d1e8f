import Engine
import Foundation
import GGUF
import Kernels
import Testing
@testable import Model
import Tokenizer

/// The real Gemma 3 270M (installed by `scripts/setup.sh --gemma`) against the independent numpy
/// forward pass of `scripts/reference_gemma3.py`: last-position logits and greedy tokens, for
/// short prompts and one of 586 tokens, longer than the 512-key sliding window (with the window
/// made unbounded, its logits move by 2.8: the window is what the reference checks there).
@Suite("Gemma 3 270M against the numpy reference", .serialized, .enabled(if: GemmaModel.locate() != nil))
struct Gemma3ReferenceTests {
    struct Fixture: Decodable {
        struct Tolerance: Decodable { let logits_abs: Float }
        struct Prompt: Decodable {
            let name: String
            let token_ids: [Int32]
            let top_ids: [Int]
            let top_logits: [Float]
            let greedy_ids: [Int32]
        }
        let tolerance: Tolerance
        let prompts: [Prompt]
    }

    static let fixture: Fixture = {
        let url = Bundle.module.url(forResource: "Fixtures/reference_gemma3", withExtension: "json")!
        return try! JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }()

    nonisolated(unsafe) static let model: Transformer? = {
        guard let path = GemmaModel.locate(), let file = try? GGUFFile(path: path) else { return nil }
        var options = ModelOptions()
        options.maxContext = 1024
        options.maxBatchTokens = 64
        return try! Transformer(file: file, options: options, pool: ThreadPool(threadCount: 2))
    }()

    @Test("last-position logits and greedy continuation match", arguments: fixture.prompts.map(\.name))
    func matchesReference(name: String) async throws {
        let model = try #require(Self.model)
        #expect(model.configuration.architecture == "gemma3" && model.configuration.slidingWindow == 512)
        let p = Self.fixture.prompts.first { $0.name == name }!
        let (logits, tokens) = try await offPool { try Runner(model: model).run(p.token_ids, greedy: p.greedy_ids.count, chunk: 64) }
        #expect(logits.indices.max { logits[$0] < logits[$1] } == p.top_ids[0])
        var worst: Float = 0
        for (id, ref) in zip(p.top_ids, p.top_logits) { worst = max(worst, abs(logits[id] - ref)) }
        #expect(worst <= Self.fixture.tolerance.logits_abs, "max |Δlogit| over the top 16 = \(worst)")
        #expect(tokens == p.greedy_ids)
    }
}

/// The real Gemma 3 270M through the engine: its SentencePiece tokenizer, the template its
/// vocabulary implies, and the reference's greedy continuation as text.
@Suite("Gemma 3 270M served", .serialized, .enabled(if: GemmaModel.locate() != nil))
struct Gemma3EngineTests {
    @Test("greedy continuation of a text prompt equals the numpy reference's")
    func greedyText() async throws {
        var options = ModelOptions()
        options.maxContext = 256
        options.maxBatchTokens = 64
        let model = try LoadedModel(path: GemmaModel.locate()!, options: options, threads: 2)
        #expect(model.chatTemplate.format == .gemma && model.chatTemplate.unavailableReason == nil)
        let engine = EngineCore(model: model.transformer, tokenizer: model.tokenizer, memPool: try model.makeMemPool(hotBlocks: 32))
        var sampling = SamplingParameters()
        sampling.maxTokens = 8
        sampling.temperature = 0
        sampling.ignoreEOS = true
        let prompt = model.tokenizer.encode("The capital of France is")
        let text = try await offPool { () throws -> String in
            try engine.add(GenerationRequest(id: 1, promptTokens: prompt, sampling: sampling))
            var text = ""
            for _ in 0..<64 where engine.hasWork { for out in try engine.step() { text += out.text } }
            return text
        }
        #expect(text == " the capital of the country of France.")
    }
}
