/// Block formats of weight matrices as stored in GGUF files (ggml's layouts).
///
/// A row of `cols` values is `cols / blockSize` blocks of `blockBytes` bytes each.
public enum WeightFormat: Sendable, Equatable, CustomStringConvertible {
    case f32, f16, bf16
    /// 32 values: fp16 scale `d`, 32 x int8. value = d * q
    case q8_0
    /// 32 values: fp16 scale `d`, 16 bytes of nibbles. value = d * (q - 8)
    case q4_0
    /// 32 values: fp16 scale `d`, fp16 min `m`, 16 bytes of nibbles. value = d * q + m
    case q4_1

    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: 1
        case .q8_0, .q4_0, .q4_1: 32
        }
    }

    public var blockBytes: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .q8_0: 34
        case .q4_0: 18
        case .q4_1: 20
        }
    }

    public func rowBytes(cols: Int) -> Int { cols / blockSize * blockBytes }

    public var description: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .bf16: "BF16"
        case .q8_0: "Q8_0"
        case .q4_0: "Q4_0"
        case .q4_1: "Q4_1"
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
