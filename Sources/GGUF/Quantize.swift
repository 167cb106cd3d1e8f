/// Converts floats to a tensor type's on-disk bytes using ggml's reference (`*_ref`) quantizers,
/// so test models built with `GGUFWriter` match what llama.cpp's tools would produce.
///
/// Supports F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and the K-quants Q2_K, Q3_K, Q4_K,
/// Q5_K, Q6_K (see `GGMLType.canQuantize`; the K-quants with a simpler scale choice than ggml's,
/// see QuantizeK.swift). Traps on any other type, on a count that is not a whole number of
/// blocks, and on non-finite input.
public func quantize(_ values: [Float], to type: GGMLType) -> [UInt8] {
    precondition(type.canQuantize, "quantize: \(type.name) is not supported (\(GGMLType.allCases.filter(\.canQuantize).map(\.name).joined(separator: ", ")) are)")
    precondition(values.count % type.blockSize == 0,
                 "quantize: \(values.count) values is not a multiple of \(type.name)'s block size \(type.blockSize)")
    var out: [UInt8] = []
    out.reserveCapacity(values.count / type.blockSize * type.typeSize)
    switch type {
    case .f32:
        for v in values { appendLE(v.bitPattern, to: &out) }
    case .f16:
        for v in values { appendLE(fp16Bits(v), to: &out) }
    case .bf16:
        for v in values { appendLE(bf16Bits(v), to: &out) }
    default:
        precondition(values.allSatisfy(\.isFinite), "quantize: \(type.name) input must be finite")
        for start in stride(from: 0, to: values.count, by: type.blockSize) {
            let block = values[start..<start + type.blockSize]
            switch type {
            case .q8_0: appendQ8_0(block, to: &out)
            case .q4_0: appendQ4_0(block, to: &out)
            case .q4_1: appendQ4_1(block, to: &out)
            case .q5_0: appendQ5_0(block, to: &out)
            case .q5_1: appendQ5_1(block, to: &out)
            case .q2_K: appendQ2_K(block, to: &out)
            case .q3_K: appendQ3_K(block, to: &out)
            case .q4_K: appendQ4_K(block, to: &out)
            case .q5_K: appendQ5_K(block, to: &out)
            default: appendQ6_K(block, to: &out)
            }
        }
    }
    return out
}

extension GGMLType {
    /// Whether `quantize(_:to:)` can produce this type.
    public var canQuantize: Bool {
        switch self {
        case .f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K: true
        default: false
        }
    }
}

/// d = amax / 127, q = round(x / d).
private func appendQ8_0(_ x: ArraySlice<Float>, to out: inout [UInt8]) {
    let amax = x.reduce(0) { max($0, abs($1)) }
    let d = amax / 127
    let id: Float = d != 0 ? 1 / d : 0
    appendLE(fp16Bits(d), to: &out)
    for v in x {
        let q = max(-127, min(127, (v * id).rounded()))
        out.append(UInt8(bitPattern: Int8(q)))
    }
}

/// d = (signed value of largest magnitude) / -8, so that value maps exactly to nibble 0;
/// low nibbles hold elements 0..<16, high nibbles 16..<32.
private func appendQ4_0(_ x: ArraySlice<Float>, to out: inout [UInt8]) {
    var amax: Float = 0
    var extreme: Float = 0
    for v in x where amax < abs(v) {
        amax = abs(v)
        extreme = v
    }
    let d = extreme / -8
    let id: Float = d != 0 ? 1 / d : 0
    appendLE(fp16Bits(d), to: &out)
    let base = x.startIndex
    for j in 0..<16 {
        let lo = nibble(x[base + j] * id + 8.5)
        let hi = nibble(x[base + j + 16] * id + 8.5)
        out.append(lo | hi << 4)
    }
}

/// d = (max - min) / 15, m = min, q = round((x - m) / d).
private func appendQ4_1(_ x: ArraySlice<Float>, to out: inout [UInt8]) {
    let lo = x.min()!
    let hi = x.max()!
    let d = (hi - lo) / 15
    let id: Float = d != 0 ? 1 / d : 0
    appendLE(fp16Bits(d), to: &out)
    appendLE(fp16Bits(lo), to: &out)
    let base = x.startIndex
    for j in 0..<16 {
        let q0 = nibble((x[base + j] - lo) * id + 0.5)
        let q1 = nibble((x[base + j + 16] - lo) * id + 0.5)
        out.append(q0 | q1 << 4)
    }
}

/// Truncates like ggml's `(int8_t)` cast (the +0.5/+8.5 bias turns it into rounding) and clamps to 0...15.
@inline(__always)
private func nibble(_ v: Float) -> UInt8 {
    UInt8(max(0, min(15, v.rounded(.towardZero))))
}

@inline(__always)
func fp16Bits(_ v: Float) -> UInt16 { Float16(v).bitPattern }

/// Round-to-nearest-even truncation of the low 16 bits, quieting NaNs, as ggml's `ggml_compute_fp32_to_bf16`.
@inline(__always)
func bf16Bits(_ v: Float) -> UInt16 {
    let u = v.bitPattern
    if u & 0x7fff_ffff > 0x7f80_0000 { return UInt16(u >> 16) | 64 }
    return UInt16((u &+ (0x7fff + ((u >> 16) & 1))) >> 16)
}
