import Testing
import GGUF

/// Independent scalar dequantizer for the reference block layouts.
private func dequantize(_ bytes: [UInt8], type: GGMLType, count: Int) -> [Float] {
    func half(_ at: Int) -> Float { Float(Float16(bitPattern: UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8)) }
    var out: [Float] = []
    for block in 0..<count / 32 {
        let b = block * type.typeSize
        switch type {
        case .q8_0:
            let d = half(b)
            for j in 0..<32 { out.append(d * Float(Int8(bitPattern: bytes[b + 2 + j]))) }
        case .q4_0:
            let d = half(b)
            let low = (0..<16).map { d * Float(Int(bytes[b + 2 + $0] & 0xF) - 8) }
            let high = (0..<16).map { d * Float(Int(bytes[b + 2 + $0] >> 4) - 8) }
            out += low + high
        case .q4_1:
            let d = half(b), m = half(b + 2)
            let low = (0..<16).map { d * Float(bytes[b + 4 + $0] & 0xF) + m }
            let high = (0..<16).map { d * Float(bytes[b + 4 + $0] >> 4) + m }
            out += low + high
        default:
            fatalError("unsupported")
        }
    }
    return out
}

@Suite("Reference quantizers")
struct QuantizeTests {
    @Test(arguments: [GGMLType.q8_0, .q4_0, .q4_1], [Float(1), 0.01, 300])
    func roundTripErrorWithinOneStep(type: GGMLType, scale: Float) {
        let values = randomFloats(32 * 16, scale: scale, seed: UInt64(type.rawValue))
        let bytes = quantize(values, to: type)
        #expect(bytes.count == values.count / 32 * type.typeSize)
        let restored = dequantize(bytes, type: type, count: values.count)
        for block in 0..<values.count / 32 {
            let x = values[block * 32..<block * 32 + 32]
            let (lo, hi) = (x.min()!, x.max()!)
            let amax = max(abs(lo), abs(hi))
            // Step size of the format; rounding error is half a step, plus fp16 rounding of the scale
            // and, for Q4_0, a full step where the side opposite the extreme clamps at +7.
            let step: Float = switch type {
            case .q8_0: amax / 127
            case .q4_0: amax / 8
            default: (hi - lo) / 15
            }
            let bound = (type == .q4_0 ? 1.0 : 0.5) * step * 1.01 + amax * 1e-3
            for j in x.indices {
                #expect(abs(restored[j] - values[j]) <= bound, "\(type) block \(block) element \(j - block * 32)")
            }
        }
    }

    @Test func q8_0Layout() {
        let values = (0..<32).map { Float($0) - 16 }   // amax 16 → d = 16/127
        let bytes = quantize(values, to: .q8_0)
        #expect(bytes.count == 34)
        #expect(Float16(bitPattern: UInt16(bytes[0]) | UInt16(bytes[1]) << 8) == Float16(Float(16) / 127))
        #expect(Int8(bitPattern: bytes[2]) == -127)   // element 0 = -16
        #expect(bytes[2 + 16] == 0)                   // element 16 = 0
        #expect(Int8(bitPattern: bytes[2 + 31]) == 119) // 15 * 127/16 = 119.06
    }

    @Test func q4_0LayoutPutsElementsSixteenApartInOneByte() {
        var values = [Float](repeating: 0, count: 32)
        values[0] = -8      // the extreme: d = -8 / -8 = 1, maps to nibble 0
        values[16] = 7      // nibble 15
        values[1] = 3       // nibble 11
        let bytes = quantize(values, to: .q4_0)
        #expect(bytes.count == 18)
        #expect(bytes[0] == 0x00 && bytes[1] == 0x3C)   // fp16 1.0
        #expect(bytes[2] == 0xF0)                        // low: element 0, high: element 16
        #expect(bytes[3] == 0x8B)                        // low: element 1 (11), high: element 17 (8)
        // A positive extreme gives a negative scale.
        let flipped = quantize(values.map { -$0 }, to: .q4_0)
        #expect(flipped[0] == 0x00 && flipped[1] == 0xBC)
    }

    @Test func q4_1LayoutStoresScaleAndMinimum() {
        let values = (0..<32).map { Float($0 % 16) + 2 }   // min 2, max 17 → d = 1
        let bytes = quantize(values, to: .q4_1)
        #expect(bytes.count == 20)
        #expect(Array(bytes[0..<4]) == [0x00, 0x3C, 0x00, 0x40])   // d = 1.0, m = 2.0
        for j in 0..<16 { #expect(bytes[4 + j] == UInt8(j) | UInt8(j) << 4) }
    }

    @Test func constantBlocksQuantizeExactly() {
        let zeros = [Float](repeating: 0, count: 32)
        #expect(quantize(zeros, to: .q8_0) == [UInt8](repeating: 0, count: 34))
        // ggml computes d = 0 / -8 = -0.0, so the scale is fp16 negative zero.
        #expect(quantize(zeros, to: .q4_0) == [0x00, 0x80] + [UInt8](repeating: 0x88, count: 16))
        let fives = [Float](repeating: 5, count: 32)
        #expect(dequantize(quantize(fives, to: .q4_1), type: .q4_1, count: 32) == fives)
        #expect(dequantize(quantize(fives, to: .q8_0), type: .q8_0, count: 32).allSatisfy { abs($0 - 5) < 0.01 })
    }

    @Test func halfAndBFloatBitPatterns() {
        #expect(quantize([1, -2, 0.5], to: .f16) == [0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38])
        #expect(quantize([65504, 1e9], to: .f16) == [0xFF, 0x7B, 0x00, 0x7C])   // max half, then inf
        #expect(quantize([1, -2], to: .bf16) == [0x80, 0x3F, 0x00, 0xC0])
        // Ties round to even: 0x3F808000 → 0x3F80, 0x3F818000 → 0x3F82.
        #expect(quantize([Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000)], to: .bf16)
                == [0x80, 0x3F, 0x82, 0x3F])
        #expect(quantize([Float(bitPattern: 0x3F80_8001)], to: .bf16) == [0x81, 0x3F])
        let nan = quantize([Float.nan], to: .bf16)
        #expect(Float(bitPattern: UInt32(nan[0]) << 16 | UInt32(nan[1]) << 24).isNaN)
        #expect(quantize([1.5], to: .f32) == [0x00, 0x00, 0xC0, 0x3F])
    }

    @Test func supportedTypes() {
        #expect(GGMLType.allCases.filter(\.canQuantize) == [.f32, .f16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .bf16])
    }
}
