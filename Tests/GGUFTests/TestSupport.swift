import Foundation
import GGUF
import Kernels

func randomFloats(_ count: Int, scale: Float = 1, seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in Float.random(in: -scale...scale, using: &rng) }
}

func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
}

/// One value of every GGUF value type, including empty and nested arrays.
let sampleMetadata: [(String, GGUFValue)] = [
    ("general.architecture", .string("llama")),
    ("general.name", .string("héllo wörld 🌍")),
    ("test.empty_string", .string("")),
    ("test.u8", .uint8(200)),
    ("test.i8", .int8(-100)),
    ("test.u16", .uint16(60000)),
    ("test.i16", .int16(-30000)),
    ("test.u32", .uint32(4_000_000_000)),
    ("test.i32", .int32(-2_000_000_000)),
    ("test.u64", .uint64(UInt64.max)),
    ("test.i64", .int64(Int64.min)),
    ("test.f32", .float32(3.25)),
    ("test.f64", .float64(-1e300)),
    ("test.true", .bool(true)),
    ("test.false", .bool(false)),
    ("test.strings", .array([.string("a"), .string(""), .string("Ġthe"), .string("日本")])),
    ("test.ints", .array([.int32(1), .int32(-2), .int32(3)])),
    ("test.floats", .array([.float32(0.5), .float32(-1.5)])),
    ("test.bools", .array([.bool(true), .bool(false)])),
    ("test.u64s", .array([.uint64(1), .uint64(UInt64.max)])),
    ("test.empty_array", .array([])),
    ("test.nested", .array([.array([.int16(1), .int16(2)]), .array([.int16(3)]), .array([])])),
    ("test.nested_strings", .array([.array([.string("x")]), .array([.string("y"), .string("z")])])),
    ("llama.block_count", .uint32(2)),
]

/// Tensor name, type, dimensions and raw bytes in the type's layout.
func sampleTensors() -> [(String, GGMLType, [Int], [UInt8])] {
    [
        ("f32", .f32, [8, 2], quantize(randomFloats(16, seed: 1), to: .f32)),
        ("f16", .f16, [5], quantize(randomFloats(5, seed: 2), to: .f16)),
        ("bf16", .bf16, [3, 1, 2], quantize(randomFloats(6, seed: 3), to: .bf16)),
        ("q8_0", .q8_0, [64, 2], quantize(randomFloats(128, seed: 4), to: .q8_0)),
        ("q4_0", .q4_0, [32, 3], quantize(randomFloats(96, seed: 5), to: .q4_0)),
        ("q4_1", .q4_1, [32, 1, 1, 2], quantize(randomFloats(64, seed: 6), to: .q4_1)),
        ("i8", .i8, [7], randomBytes(7, seed: 7)),
        ("q4_K", .q4_K, [256], randomBytes(144, seed: 8)),
        ("empty", .f32, [0, 4], []),
    ]
}

func sampleWriter(alignment: Int = 32, version: UInt32 = 3) -> GGUFWriter {
    var writer = GGUFWriter(alignment: alignment, version: version)
    for (key, value) in sampleMetadata { writer.set(key, value) }
    for (name, type, dims, data) in sampleTensors() {
        writer.addTensor(name: name, type: type, dimensions: dims, data: data)
    }
    return writer
}

/// Parses `bytes`, returning the error (nil on success).
func parseError(_ bytes: [UInt8]) -> GGUFError? {
    do {
        _ = try GGUFFile(bytes: bytes)
        return nil
    } catch {
        return error
    }
}

extension Array where Element == UInt8 {
    mutating func store<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        Swift.withUnsafeBytes(of: value.littleEndian) { raw in
            for (i, b) in raw.enumerated() { self[offset + i] = b }
        }
    }

    /// Offset of the first occurrence of `needle`.
    func firstOffset(of needle: [UInt8]) -> Int? {
        guard needle.count <= count else { return nil }
        return (0...(count - needle.count)).first { Array(self[$0..<$0 + needle.count]) == needle }
    }
}

func temporaryPath(_ name: String) -> String {
    NSTemporaryDirectory() + "gguf-tests-\(ProcessInfo.processInfo.processIdentifier)-\(name)"
}
