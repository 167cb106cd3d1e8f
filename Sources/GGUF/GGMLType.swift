/// A ggml tensor element type, with the numeric ids used in GGUF tensor infos.
///
/// Ids 4 and 5 (Q4_2, Q4_3) were removed from ggml long ago and are rejected. The interleaved
/// Q4_0/IQ4_NL repackings (31–33, 36–38) are kept so that files written while they existed still open.
public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0, f16 = 1
    case q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28
    case iq1_m = 29, bf16 = 30
    case q4_0_4_4 = 31, q4_0_4_8 = 32, q4_0_8_8 = 33
    case tq1_0 = 34, tq2_0 = 35
    case iq4_nl_4_4 = 36, iq4_nl_4_8 = 37, iq4_nl_8_8 = 38
    case mxfp4 = 39

    /// Elements per block (1 for plain scalar types).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16, .f64, .i8, .i16, .i32, .i64: 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_nl, .mxfp4,
             .q4_0_4_4, .q4_0_4_8, .q4_0_8_8, .iq4_nl_4_4, .iq4_nl_4_8, .iq4_nl_8_8: 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K,
             .iq2_xxs, .iq2_xs, .iq3_xxs, .iq1_s, .iq3_s, .iq2_s, .iq4_xs, .iq1_m,
             .tq1_0, .tq2_0: 256
        }
    }

    /// Bytes per block, matching ggml's `block_*` struct sizes.
    public var typeSize: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .f64: 8
        case .i8: 1
        case .i16: 2
        case .i32: 4
        case .i64: 8
        case .q4_0: 18          // fp16 d + 16 nibble bytes
        case .q4_1: 20          // fp16 d, fp16 m + 16
        case .q5_0: 22          // fp16 d + 4 high-bit bytes + 16
        case .q5_1: 24
        case .q8_0: 34          // fp16 d + 32 int8
        case .q8_1: 36          // fp16 d, fp16 s + 32 int8
        case .q2_K: 84
        case .q3_K: 110
        case .q4_K: 144
        case .q5_K: 176
        case .q6_K: 210
        case .q8_K: 292         // f32 d + 256 int8 + 16 int16 sums
        case .iq2_xxs: 66
        case .iq2_xs: 74
        case .iq3_xxs: 98
        case .iq1_s: 50
        case .iq4_nl: 18
        case .iq3_s: 110
        case .iq2_s: 82
        case .iq4_xs: 136
        case .iq1_m: 56
        case .q4_0_4_4, .q4_0_4_8, .q4_0_8_8, .iq4_nl_4_4, .iq4_nl_4_8, .iq4_nl_8_8: 18
        case .tq1_0: 54
        case .tq2_0: 66
        case .mxfp4: 17         // e8m0 scale + 16 nibble bytes
        }
    }

    /// The name ggml and llama.cpp print for this type, e.g. "Q4_1".
    public var name: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .bf16: "BF16"
        case .f64: "F64"
        case .i8: "I8"
        case .i16: "I16"
        case .i32: "I32"
        case .i64: "I64"
        case .q4_0: "Q4_0"
        case .q4_1: "Q4_1"
        case .q5_0: "Q5_0"
        case .q5_1: "Q5_1"
        case .q8_0: "Q8_0"
        case .q8_1: "Q8_1"
        case .q2_K: "Q2_K"
        case .q3_K: "Q3_K"
        case .q4_K: "Q4_K"
        case .q5_K: "Q5_K"
        case .q6_K: "Q6_K"
        case .q8_K: "Q8_K"
        case .iq2_xxs: "IQ2_XXS"
        case .iq2_xs: "IQ2_XS"
        case .iq3_xxs: "IQ3_XXS"
        case .iq1_s: "IQ1_S"
        case .iq4_nl: "IQ4_NL"
        case .iq3_s: "IQ3_S"
        case .iq2_s: "IQ2_S"
        case .iq4_xs: "IQ4_XS"
        case .iq1_m: "IQ1_M"
        case .q4_0_4_4: "Q4_0_4_4"
        case .q4_0_4_8: "Q4_0_4_8"
        case .q4_0_8_8: "Q4_0_8_8"
        case .tq1_0: "TQ1_0"
        case .tq2_0: "TQ2_0"
        case .iq4_nl_4_4: "IQ4_NL_4_4"
        case .iq4_nl_4_8: "IQ4_NL_4_8"
        case .iq4_nl_8_8: "IQ4_NL_8_8"
        case .mxfp4: "MXFP4"
        }
    }

    public var description: String { name }

    /// Bytes needed for `elements` values, or nil when `elements` is negative, not a whole number
    /// of blocks, or the size overflows `Int`.
    public func byteCount(elements: Int) -> Int? {
        guard elements >= 0, elements % blockSize == 0 else { return nil }
        let (bytes, overflow) = (elements / blockSize).multipliedReportingOverflow(by: typeSize)
        return overflow ? nil : bytes
    }
}
