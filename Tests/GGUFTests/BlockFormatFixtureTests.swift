import Foundation
import Testing
import GGUF
import Kernels

/// `Fixtures/<TYPE>.*`, written by `scripts/make_quant_fixture.py` with the gguf package.
private func fixture(_ name: String) throws -> Data {
    let url = try #require(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil))
    return try Data(contentsOf: url)
}

private func floats(_ d: Data) -> [Float] {
    d.withUnsafeBytes { b in (0..<d.count / 4).map { Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) } }
}

private let formats: [(GGMLType, WeightFormat)] = [
    (.q5_0, .q5_0), (.q5_1, .q5_1), (.q2_K, .q2_K), (.q3_K, .q3_K), (.q4_K, .q4_K), (.q5_K, .q5_K), (.q6_K, .q6_K),
]

/// Our decoders against an independent implementation (the gguf package's numpy code).
@Suite("Block formats against the gguf package")
struct BlockFormatFixtureTests {
    /// Random blocks (sane fp16 scales, every other byte random) decode to the package's floats:
    /// exactly for the symmetric formats, and within one rounding of the largest value in the
    /// block for those with a min, which fuse (d·sc)·q − dmin·m into one FMA.
    @Test(arguments: formats)
    func dequantizationMatchesPackage(type: GGMLType, format: WeightFormat) throws {
        let blocks = try fixture("\(type.name).blocks"), expected = floats(try fixture("\(type.name).f32"))
        #expect(blocks.count == expected.count / type.blockSize * type.typeSize)
        #expect(format.blockBytes == type.typeSize && format.blockSize == type.blockSize)
        var got = [Float](repeating: .nan, count: expected.count)
        blocks.withUnsafeBytes { dequantize(format, $0.baseAddress!, &got, count: expected.count) }
        let fused = [.q5_1, .q2_K, .q4_K, .q5_K].contains(type)
        var bad = 0, inexact = 0
        for start in stride(from: 0, to: expected.count, by: type.blockSize) {
            let range = start..<start + type.blockSize
            let tol: Float = fused ? 2 * expected[range].reduce(0) { max($0, abs($1)) }.ulp : 0
            for i in range where got[i] != expected[i] {
                inexact += 1
                if !(abs(got[i] - expected[i]) <= tol) { bad += 1 }
            }
        }
        #expect(bad == 0, "\(type): \(bad) of \(expected.count) values off by more than rounding")
        if !fused { #expect(inexact == 0) }
    }

    /// Q5_0 and Q5_1 follow ggml's reference quantizers, as the package does: same bytes.
    @Test(arguments: [GGMLType.q5_0, .q5_1])
    func quantizerMatchesPackage(type: GGMLType) throws {
        let input = floats(try fixture("\(type.name).input.f32"))
        #expect(quantize(input, to: type) == [UInt8](try fixture("\(type.name).quantized")))
    }

    /// The K-quant quantizers: each value within half its sub-block's step (range / qmax,
    /// widened by the quantization of the sub-block scale) plus half a min step.
    @Test(arguments: [GGMLType.q2_K, .q3_K, .q4_K, .q5_K, .q6_K], [Float(1), 0.01, 300])
    func kQuantRoundTrip(type: GGMLType, scale: Float) {
        let format = formats.first { $0.0 == type }!.1
        var values = randomFloats(256 * 6, scale: scale, seed: UInt64(type.rawValue))
        for i in 0..<32 { values[256 + i] = 0 }                    // an all-zero sub-block
        for i in 0..<256 { values[512 + i] = abs(values[512 + i]) } // a block without negatives
        let bytes = quantize(values, to: type)
        #expect(bytes.count == values.count / 256 * type.typeSize)
        var restored = [Float](repeating: .nan, count: values.count)
        bytes.withUnsafeBytes { dequantize(format, $0.baseAddress!, &restored, count: values.count) }
        let (sub, qmax, smax, symmetric): (Int, Float, Float, Bool) = switch type {
        case .q2_K: (16, 3, 15, false)
        case .q3_K: (16, 3, 31, true)
        case .q4_K: (32, 15, 63, false)
        case .q5_K: (32, 31, 63, false)
        default: (16, 31, 127, true)
        }
        for b in 0..<values.count / 256 {
            let block = values[(256 * b)..<(256 * b + 256)]
            var steps: [Float] = [], mins: [Float] = []
            for j in 0..<256 / sub {
                let s = block[(256 * b + j * sub)..<(256 * b + (j + 1) * sub)]
                let lo = min(0, s.min()!), hi = max(0, s.max()!)
                steps.append(symmetric ? max(-lo, hi) / qmax : (hi - lo) / qmax)
                mins.append(-lo)
            }
            let d = steps.max()! / smax, dmin = symmetric ? 0 : mins.max()! / smax
            for i in block.indices {
                let j = (i - 256 * b) / sub
                let bound = (0.5 * (steps[j] + d) + 0.5 * dmin) * 1.01 + scale * 1e-6
                #expect(abs(restored[i] - values[i]) <= bound, "\(type) block \(b) element \(i - 256 * b)")
            }
        }
    }
}
