import Kernels

// Plain scalar references and deterministic random data shared by the kernel tests.

typealias TestRNG = SplitMix64

extension SplitMix64 {
    init(_ seed: UInt64) { self.init(seed: seed) }
    mutating func float(_ lo: Float = -1, _ hi: Float = 1) -> Float { Float.random(in: lo..<hi, using: &self) }
}

func randomVector(_ n: Int, _ rng: inout TestRNG, scale: Float = 1) -> [Float] {
    (0..<n).map { _ in rng.float() * scale }
}

func half(_ v: Float) -> UInt16 { Float16(v).bitPattern }

/// Random matrix bytes in `format`, with positive and negative scales.
func randomMatrix(_ format: WeightFormat, rows: Int, cols: Int, _ rng: inout TestRNG) -> [UInt8] {
    var out: [UInt8] = []
    func put16(_ v: UInt16) { out.append(UInt8(v & 0xFF)); out.append(UInt8(v >> 8)) }
    for _ in 0..<rows {
        switch format {
        case .f32:
            for _ in 0..<cols { let b = rng.float().bitPattern; for k in 0..<4 { out.append(UInt8((b >> (8 * k)) & 0xFF)) } }
        case .f16:
            for _ in 0..<cols { put16(half(rng.float())) }
        case .bf16:
            for _ in 0..<cols { put16(UInt16(rng.float().bitPattern >> 16)) }
        case .q8_0, .q4_0, .q4_1:
            for _ in 0..<cols / 32 {
                put16(half(rng.float(-0.1, 0.1)))
                if format == .q4_1 { put16(half(rng.float(-0.5, 0.5))) }
                let n = format == .q8_0 ? 32 : 16
                for _ in 0..<n { out.append(UInt8.random(in: 0...255, using: &rng)) }
            }
        default:
            // Random bytes with sane fp16 block scales of both signs; K-quant block scales are
            // smaller, as they multiply sub-block scales of up to 63 or 127.
            for _ in 0..<cols / format.blockSize {
                var block = (0..<format.blockBytes).map { _ in UInt8.random(in: 0...255, using: &rng) }
                for off in format.halfScaleOffsets {
                    let h = half(rng.float(-0.1, 0.1) / (format.blockSize == 256 ? 32 : 1))
                    block[off] = UInt8(h & 0xFF)
                    block[off + 1] = UInt8(h >> 8)
                }
                out += block
            }
        }
    }
    return out
}

/// Value `i` of a row, straight from the ggml block layout definitions.
func referenceWeight(_ format: WeightFormat, _ row: UnsafeRawPointer, _ i: Int) -> Float {
    func h(_ off: Int) -> Float { Float(Float16(bitPattern: row.loadUnaligned(fromByteOffset: off, as: UInt16.self))) }
    switch format {
    case .f32: return row.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
    case .f16: return h(2 * i)
    case .bf16: return Float(bitPattern: UInt32(row.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
    case .q8_0:
        let b = i / 32, j = i % 32
        return h(34 * b) * Float(row.load(fromByteOffset: 34 * b + 2 + j, as: Int8.self))
    case .q4_0:
        let b = i / 32, j = i % 32
        let byte = row.load(fromByteOffset: 18 * b + 2 + j % 16, as: UInt8.self)
        let q = j < 16 ? byte & 0xF : byte >> 4
        return h(18 * b) * Float(Int(q) - 8)
    case .q4_1:
        let b = i / 32, j = i % 32
        let byte = row.load(fromByteOffset: 20 * b + 4 + j % 16, as: UInt8.self)
        let q = j < 16 ? byte & 0xF : byte >> 4
        return h(20 * b) * Float(q) + h(20 * b + 2)
    default:
        fatalError("\(format): checked against the gguf package's dequantization instead")
    }
}

/// Formats with a scalar `referenceWeight`.
let allFormats: [WeightFormat] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1]
/// Formats whose dequantization is checked against the gguf package (GGUFTests) and whose
/// mat-mul is checked against dequantize-then-dot.
let fixtureFormats: [WeightFormat] = [.q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]
