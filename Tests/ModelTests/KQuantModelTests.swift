import GGUF
import Kernels
import Testing
@testable import Model

/// Synthetic models whose projections are in the Q5 and K-quant formats. Their rows are 256
/// wide (a K-quant super-block), so the shape is wider than `ForwardTests`'.
@Suite("Q5 and K-quant models")
struct KQuantModelTests {
    static func shape(_ type: GGMLType) -> SyntheticModel.Shape {
        var s = SyntheticModel.Shape()
        s.hidden = 256
        s.intermediate = 512
        s.weightType = type
        return s
    }

    /// Relative RMS difference of two logit vectors.
    static func relativeRMS(_ a: [Float], _ b: [Float]) -> Float {
        let diff = zip(a, b).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        return (diff / b.reduce(0) { $0 + $1 * $1 }).squareRoot()
    }

    /// Relative RMS error of the logits of the model in `type` against the same random weights
    /// in F32, through the quantized kernels; also checks them against the dequantized GEMM path.
    static func logitError(_ type: GGMLType) throws -> Float {
        let prompt = ForwardTests.prompt(20, seed: 9)
        let f32 = try Runner(model: try ForwardTests.model(Self.shape(.f32))).run(prompt, greedy: 0).logits
        let dense = try Runner(model: try ForwardTests.model(Self.shape(type))).run(prompt, greedy: 0).logits
        let kernel = try Runner(model: try ForwardTests.model(Self.shape(type), denseMinRows: 1 << 20)).run(prompt, greedy: 0).logits
        #expect(kernel.allSatisfy { $0.isFinite })
        #expect(ForwardTests.maxDiff(kernel, dense) < 2e-4, "\(type): quantized kernel vs dequantized GEMM")
        return Self.relativeRMS(kernel, f32)
    }

    /// The same random weights as F32 and quantized: each format's logit error stays under a
    /// bound (about 1.5× what the fixed seed gives, which is deterministic), the K-quants' errors
    /// shrink with their bits, and Q4_K (4.5 bits per weight) is about as good as Q4_1 (5 bits).
    /// (A random two-layer model amplifies weight noise: the errors are large for few bits.)
    @Test func logitsCloseToF32() async throws {
        let bounds: [(GGMLType, Float)] = [(.q8_0, 0.02), (.q6_K, 0.08), (.q5_K, 0.15), (.q5_1, 0.16), (.q5_0, 0.17),
                                          (.q4_K, 0.28), (.q4_1, 0.28), (.q3_K, 0.75), (.q2_K, 1.0)]
        let err = try await offPool {
            var err: [GGMLType: Float] = [:]
            for (type, _) in bounds { err[type] = try Self.logitError(type) }
            return err
        }
        for (type, bound) in bounds {
            #expect(err[type]! < bound, "\(type): relative RMS logit error \(err[type]!)")
        }
        let ladder: [GGMLType] = [.q8_0, .q6_K, .q5_K, .q4_K, .q3_K, .q2_K]
        #expect(zip(ladder, ladder.dropFirst()).allSatisfy { err[$0.0]! < err[$0.1]! }, "\(err)")
        #expect(err[.q4_K]! < 1.2 * err[.q4_1]!, "\(err)")
    }

    /// Greedy decoding runs through the quantized kernels at batch 1 (decode) too.
    @Test func q4_KGreedyDecodes() async throws {
        let run = try await offPool {
            let m = try ForwardTests.model(Self.shape(.q4_K), denseMinRows: 1 << 20)
            return try Runner(model: m).run(ForwardTests.prompt(12, seed: 3), greedy: 6)
        }
        #expect(run.tokens.count == 6)
        #expect(run.logits.allSatisfy { $0.isFinite })
    }

    /// A format the engine cannot execute is named, with the tensor.
    @Test func unexecutableFormatIsNamed() throws {
        let full = try GGUFFile(bytes: SyntheticModel.gguf(Self.shape(.q4_K)))
        var w = GGUFWriter()
        for key in full.metadataKeys { w.set(key, full.metadata[key]!) }
        for t in full.tensors {
            if t.name == "blk.0.attn_q.weight" {
                let bytes = GGMLType.iq4_xs.byteCount(elements: t.dimensions.reduce(1, *))!
                w.addTensor(name: t.name, type: .iq4_xs, dimensions: t.dimensions, data: [UInt8](repeating: 0, count: bytes))
            } else {
                w.addTensor(name: t.name, type: t.type, dimensions: t.dimensions, data: Array(full.tensorData(t)))
            }
        }
        let file = try GGUFFile(bytes: w.bytes())
        #expect(throws: ModelError.unsupportedTensorType(name: "blk.0.attn_q.weight", type: "IQ4_XS")) {
            try Transformer(file: file, pool: ThreadPool(threadCount: 1))
        }
        #expect(ModelError.unsupportedTensorType(name: "blk.0.attn_q.weight", type: "IQ4_XS").description.contains("IQ4_XS"))
    }
}
