/// Block formats of weight matrices as stored in GGUF files (ggml's layouts).
///
/// A row of `cols` values is `cols / blockSize` blocks of `blockBytes` bytes each. The K-quants'
/// blocks are 256-value super-blocks of sub-blocks with their own quantized scales (and mins).
public enum WeightFormat: Sendable, Equatable, CaseIterable, CustomStringConvertible {
    case f32, f16, bf16
    /// 32 values: fp16 scale `d`, 32 x int8. value = d * q
    case q8_0
    /// 32 values: fp16 scale `d`, 16 bytes of nibbles. value = d * (q - 8)
    case q4_0
    /// 32 values: fp16 scale `d`, fp16 min `m`, 16 bytes of nibbles. value = d * q + m
    case q4_1
    /// 32 values: fp16 `d`, 32 high bits, 16 bytes of nibbles. value = d * (q - 16)
    case q5_0
    /// 32 values: fp16 `d`, fp16 `m`, 32 high bits, 16 bytes of nibbles. value = d * q + m
    case q5_1
    /// 256 values: 16 sub-blocks of 16 with 4-bit scale and min, 2-bit quants, fp16 d and dmin.
    case q2_K
    /// 256 values: 16 sub-blocks of 16 with 6-bit scales, 3-bit quants (2 bits + a bit plane), fp16 d.
    case q3_K
    /// 256 values: fp16 d and dmin, 8 sub-blocks of 32 with 6-bit scale and min, 4-bit quants.
    /// value = d * sc * q - dmin * m
    case q4_K
    /// Q4_K's layout plus a bit plane of fifth bits.
    case q5_K
    /// 256 values: 16 sub-blocks of 16 with int8 scales, 6-bit quants, fp16 d. value = d * sc * (q - 32)
    case q6_K

    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: 1
        case .q8_0, .q4_0, .q4_1, .q5_0, .q5_1: 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K: 256
        }
    }

    public var blockBytes: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .q8_0: 34
        case .q4_0: 18
        case .q4_1: 20
        case .q5_0: 22
        case .q5_1: 24
        case .q2_K: 84
        case .q3_K: 110
        case .q4_K: 144
        case .q5_K: 176
        case .q6_K: 210
        }
    }

    public func rowBytes(cols: Int) -> Int { cols / blockSize * blockBytes }

    /// Byte offsets of a block's fp16 scales (d, and the min or dmin where there is one): where
    /// random test and benchmark data must hold sane values instead of random bits.
    public var halfScaleOffsets: [Int] {
        switch self {
        case .f32, .f16, .bf16: []
        case .q8_0, .q4_0, .q5_0: [0]
        case .q4_1, .q5_1, .q4_K, .q5_K: [0, 2]
        case .q2_K: [80, 82]
        case .q3_K: [108]
        case .q6_K: [208]
        }
    }

    public var description: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .bf16: "BF16"
        case .q8_0: "Q8_0"
        case .q4_0: "Q4_0"
        case .q4_1: "Q4_1"
        case .q5_0: "Q5_0"
        case .q5_1: "Q5_1"
        case .q2_K: "Q2_K"
        case .q3_K: "Q3_K"
        case .q4_K: "Q4_K"
        case .q5_K: "Q5_K"
        case .q6_K: "Q6_K"
        }
    }
}

/// A row-major weight matrix `[rows][cols]` in a block format, viewed in place (e.g. in a
/// memory-mapped GGUF file). GGUF's `ne0` is `cols` (the input dimension).
public struct QuantizedMatrix: @unchecked Sendable {
    public let format: WeightFormat
    public let rows: Int
    public let cols: Int
    public let base: UnsafeRawPointer
    public var rowBytes: Int { format.rowBytes(cols: cols) }

    public init(format: WeightFormat, rows: Int, cols: Int, base: UnsafeRawPointer) {
        precondition(cols % format.blockSize == 0, "cols must be a multiple of the block size")
        self.format = format
        self.rows = rows
        self.cols = cols
        self.base = base
    }

    @inlinable public func row(_ r: Int) -> UnsafeRawPointer { base + r * format.rowBytes(cols: cols) }
}
