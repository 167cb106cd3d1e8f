import Engine
import Foundation
import GGUF
import Kernels
import Testing
@testable import Model
import Tokenizer

/// Llama 3.x files: RoPE scaling (`rope.scaling.*`, `rope_freqs.weight`) against the published
/// formulas computed here independently, and the Llama 3 chat template on a synthetic model.
@Suite("Llama 3 RoPE scaling and chat format on synthetic models")
struct Llama3Tests {
    static let original = 32, factor = 8.0

    /// Meta's `apply_scaling` (llama-models, `reference_impl/model.py`), written out as published:
    /// scaled inverse frequencies for base 10000 and head size 16.
    static func metaScaledFrequencies(headDim: Int = 16, base: Double = 10_000, factor: Double = factor,
                                      original: Double = Double(original), low: Double = 1, high: Double = 4) -> [Double] {
        var out: [Double] = []
        for i in stride(from: 0, to: headDim, by: 2) {
            let freq = 1 / Foundation.pow(base, Double(i) / Double(headDim))
            let wavelen = 2 * Double.pi / freq
            if wavelen < original / high {
                out.append(freq)
            } else if wavelen > original / low {
                out.append(freq / factor)
            } else {
                let smooth = (original / wavelen - low) / (high - low)
                out.append((1 - smooth) * freq / factor + smooth * freq)
            }
        }
        return out
    }

    static func model(_ shape: SyntheticModel.Shape) throws -> Transformer {
        var options = ModelOptions()
        options.maxBatchTokens = 128
        options.maxContext = 128
        return try Transformer(file: GGUFFile(bytes: SyntheticModel.gguf(shape)), options: options,
                               pool: ThreadPool(threadCount: 1))
    }

    /// Worst |angle difference| between the model's table and `position · frequencies[i]`.
    static func angleError(_ m: Transformer, _ frequencies: [Double], positions: [Int]) -> Double {
        let half = m.configuration.headDim / 2
        var worst = 0.0
        for p in positions {
            for i in 0..<half {
                let a = Double(p) * frequencies[i]
                worst = max(worst, abs(Double(m.rope.cos[p * half + i]) - Foundation.cos(a)),
                            abs(Double(m.rope.sin[p * half + i]) - Foundation.sin(a)))
            }
        }
        return worst
    }

    static let positions = [0, 1, 7, 31, 64, 127]
    static let prompt: [Int32] = (0..<60).map { Int32(3 + ($0 * 7919) % 250) }

    @Test("rope_freqs.weight factors and llama3-type keys give Meta's frequencies and the same logits")
    func llama3Scaling() async throws {
        let meta = Self.metaScaledFrequencies()
        let plainFrequencies = (0..<8).map { 1 / Foundation.pow(10_000, Double(2 * $0) / 16) }
        var tensorShape = SyntheticModel.Shape()
        // What llama.cpp's converter writes: the divisors plain / scaled.
        tensorShape.ropeFrequencyFactors = zip(plainFrequencies, meta).map { Float($0 / $1) }
        var keyShape = SyntheticModel.Shape()
        keyShape.extraMetadata = ["rope.scaling.type": .string("llama3"), "rope.scaling.factor": .float32(Float(Self.factor)),
                                  "rope.scaling.original_context_length": .uint32(UInt32(Self.original))]
        let fromTensor = try Self.model(tensorShape), fromKeys = try Self.model(keyShape), plain = try Self.model(SyntheticModel.Shape())

        #expect(fromTensor.configuration.ropeScaling.frequencyFactors?.count == 8)
        #expect(fromKeys.configuration.ropeScaling.originalContextLength == Self.original)
        #expect(Self.angleError(fromTensor, meta, positions: Self.positions) < 1e-6)
        #expect(Self.angleError(fromKeys, meta, positions: Self.positions) < 1e-6)
        #expect(Self.angleError(plain, plainFrequencies, positions: Self.positions) < 1e-6)
        // The three branches of the formula all occur for this shape.
        let ratios = zip(plainFrequencies, meta).map { $0 / $1 }
        #expect(ratios.first == 1 && ratios.last == Self.factor && ratios.contains { $0 > 1 && $0 < Self.factor })

        let runs = try await offPool {
            try [fromTensor, fromKeys, plain].map { try Runner(model: $0).run(Self.prompt, greedy: 2) }
        }
        #expect(ForwardTests.maxDiff(runs[0].logits, runs[1].logits) < 1e-5)
        #expect(ForwardTests.maxDiff(runs[0].logits, runs[2].logits) > 1e-3, "scaling must change long-range logits")
    }

    @Test("linear scaling divides positions by the factor; none and factor 1 change nothing")
    func linearScaling() throws {
        var linear = SyntheticModel.Shape()
        linear.extraMetadata = ["rope.scaling.type": .string("linear"), "rope.scaling.factor": .float32(4)]
        let m = try Self.model(linear)
        #expect(m.configuration.ropeScaling.linearFactor == 4)
        let plainFrequencies = (0..<8).map { 1 / Foundation.pow(10_000, Double(2 * $0) / 16) }
        #expect(Self.angleError(m, plainFrequencies.map { $0 / 4 }, positions: Self.positions) < 1e-6)
        // llama.cpp's older key, and no type (linear is the default).
        var legacy = SyntheticModel.Shape()
        legacy.extraMetadata = ["rope.scale_linear": .float32(4)]
        #expect(try Self.model(legacy).configuration.ropeScaling.linearFactor == 4)
        for metadata: [String: GGUFValue] in [["rope.scaling.type": .string("none"), "rope.scaling.factor": .float32(4)],
                                              ["rope.scaling.factor": .float32(1)]] {
            var shape = SyntheticModel.Shape()
            shape.extraMetadata = metadata
            #expect(try Self.model(shape).configuration.ropeScaling == .none)
        }
    }

    @Test("YaRN, a malformed rope_freqs and llama3 keys without a factor are refused by name")
    func refusals() throws {
        var yarn = SyntheticModel.Shape()
        yarn.extraMetadata = ["rope.scaling.type": .string("yarn"), "rope.scaling.factor": .float32(4)]
        #expect(throws: ModelError.unsupportedRoPEScaling("yarn")) { try Self.model(yarn) }
        var short = SyntheticModel.Shape()
        short.ropeFrequencyFactors = [1, 2, 3]
        #expect(throws: ModelError.tensorShape(name: "rope_freqs.weight", expected: [8], found: [3])) { try Self.model(short) }
        var zero = SyntheticModel.Shape()
        zero.ropeFrequencyFactors = [Float](repeating: 0, count: 8)
        #expect(throws: ModelError.self) { try Self.model(zero) }
        var noFactor = SyntheticModel.Shape()
        noFactor.extraMetadata = ["rope.scaling.type": .string("llama3")]
        #expect(throws: ModelError.self) { try Self.model(noFactor) }
    }

    static let llama3Specials = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    static let llama3Template = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
        + "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}"
        + "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
        + "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"

    @Test("a Llama 3.1-style file (scaled RoPE, Llama 3 template) loads and chats through its own format")
    func llama3ChatModel() async throws {
        var shape = SyntheticModel.Shape()
        shape.extraSpecialTokens = Self.llama3Specials
        shape.chatTemplate = Self.llama3Template
        shape.ropeFrequencyFactors = zip((0..<8).map { 1 / Foundation.pow(10_000, Double(2 * $0) / 16) },
                                         Self.metaScaledFrequencies()).map { Float($0 / $1) }
        var options = ModelOptions()
        options.maxContext = 128
        options.maxBatchTokens = 128
        let model = try LoadedModel(file: GGUFFile(bytes: SyntheticModel.gguf(shape)), name: "llama3", options: options, threads: 1)
        let template = model.chatTemplate
        #expect(template.format == .llama3 && template.fallbackNotice == nil && template.unavailableReason == nil)
        let eot = try #require(model.tokenizer.id(of: "<|eot_id|>"))
        #expect(template.stopTokens.contains(eot))
        let tokens = template.encode([.system("S"), .user("Hi")], with: model.tokenizer)
        let header = try #require(model.tokenizer.id(of: "<|start_header_id|>"))
        // The template writes bos_token, so BOS leads although the vocabulary does not add it.
        #expect(tokens.first == model.tokenizer.bosID && tokens[1] == header)
        #expect(tokens.filter { $0 == header }.count == 3)

        let engine = EngineCore(model: model.transformer, tokenizer: model.tokenizer, memPool: try model.makeMemPool(hotBlocks: 32))
        var sampling = SamplingParameters()
        sampling.maxTokens = 4
        sampling.temperature = 0
        sampling.stopTokens = template.stopTokens
        let outputs = try await offPool { () throws -> [RequestOutput] in
            try engine.add(GenerationRequest(id: 1, promptTokens: tokens, sampling: sampling))
            var outputs: [RequestOutput] = []
            for _ in 0..<64 where engine.hasWork { outputs += try engine.step() }
            return outputs
        }
        #expect(outputs.last?.finishReason != nil)
    }
}
