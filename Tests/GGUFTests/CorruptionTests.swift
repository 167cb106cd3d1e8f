import Testing
import GGUF
import Kernels

/// Key "a" = uint32 7 and one F32 tensor "t" of 4 elements. Layout (byte offsets):
/// 0 magic, 4 version, 8 tensor count, 16 kv count,
/// 24 key length, 32 "a", 33 value type, 37 value,
/// 41 tensor name length, 49 "t", 50 n_dims, 54 ne0, 62 ggml type, 66 data offset,
/// 74 end of infos → data section at 96: 16 bytes of data, padded to 32 as ggml does.
private func minimalFile() -> [UInt8] {
    var writer = GGUFWriter()
    writer.set("a", .uint32(7))
    writer.addTensor(name: "t", dimensions: [4], floats: [1, 2, 3, 4])
    return writer.bytes()
}

@Suite("Corrupted and truncated files")
struct CorruptionTests {
    @Test func minimalLayoutIsAsDocumented() throws {
        let bytes = minimalFile()
        #expect(bytes.count == 128)
        #expect(bytes[32] == UInt8(ascii: "a") && bytes[49] == UInt8(ascii: "t"))
        let file = try GGUFFile(bytes: bytes)
        #expect(file.dataOffset == 96)
    }

    @Test func badMagic() {
        var bytes = minimalFile()
        bytes[0] = 0x00
        #expect(parseError(bytes) == .notGGUF(magic: 0x4655_4700))
        #expect(parseError(Array("GGML".utf8) + bytes[4...]) != nil)
    }

    @Test(arguments: [UInt32(0), 1, 4, 99, 0x0300_0000])
    func unsupportedVersions(version: UInt32) {
        var bytes = minimalFile()
        bytes.store(version, at: 4)
        let error = parseError(bytes)
        #expect(error == .unsupportedVersion(version))
        #expect(error?.description.contains("version \(version)") == true)
    }

    @Test func unknownValueType() {
        var bytes = minimalFile()
        bytes.store(UInt32(13), at: 33)
        let error = parseError(bytes)
        #expect(error == .unknownValueType(13, key: "a", offset: 33))
        #expect(error?.description.contains("'a'") == true)
        #expect(error?.description.contains("offset 33") == true)
    }

    @Test func unknownTensorType() {
        var bytes = minimalFile()
        bytes.store(UInt32(4), at: 62)   // Q4_2, long removed from ggml
        #expect(parseError(bytes) == .unknownTensorType(4, tensor: "t", offset: 41))
        bytes.store(UInt32(0xFFFF_FFFF), at: 62)
        #expect(parseError(bytes) == .unknownTensorType(0xFFFF_FFFF, tensor: "t", offset: 41))
    }

    @Test func tensorOffsetBeyondFile() {
        var bytes = minimalFile()
        bytes.store(UInt64(1024), at: 66)
        let error = parseError(bytes)
        #expect(error == .tensorOutOfBounds(name: "t", offset: 1024, byteCount: 16, dataSize: 32))
        #expect(error?.description.contains("'t'") == true)
        bytes.store(UInt64.max - 31, at: 66)
        #expect(parseError(bytes) == .tensorOutOfBounds(name: "t", offset: Int.max, byteCount: 16, dataSize: 0))
    }

    @Test func tensorLargerThanData() {
        var bytes = minimalFile()
        bytes.store(UInt64(9), at: 54)
        #expect(parseError(bytes) == .tensorOutOfBounds(name: "t", offset: 0, byteCount: 36, dataSize: 32))
    }

    @Test(arguments: [UInt64(1) << 63, UInt64.max, 97])
    func stringLengthBeyondFile(length: UInt64) {
        var bytes = minimalFile()
        bytes.store(length, at: 24)
        guard case .countTooLarge(let what, let count, let offset, let remaining) = parseError(bytes) else {
            Issue.record("expected countTooLarge, got \(String(describing: parseError(bytes)))")
            return
        }
        #expect(what.contains("key"))
        #expect(count == length && offset == 24 && remaining == 96)
    }

    @Test func hugeCounts() {
        for at in [8, 16] {
            var bytes = minimalFile()
            bytes.store(UInt64.max, at: at)
            guard case .countTooLarge(_, UInt64.max, at, _) = parseError(bytes) else {
                Issue.record("count at \(at): \(String(describing: parseError(bytes)))")
                continue
            }
        }
        var writer = GGUFWriter()
        writer.set("list", .array([.uint32(1), .uint32(2)]))
        var bytes = writer.bytes()
        // key length 24, "list" 32, value type 36, element type 40, count 44.
        bytes.store(UInt64(1) << 60, at: 44)
        guard case .countTooLarge(let what, _, 44, _) = parseError(bytes) else {
            Issue.record("array count: \(String(describing: parseError(bytes)))")
            return
        }
        #expect(what.contains("list"))
    }

    @Test func dimensionProblems() {
        var bytes = minimalFile()
        bytes.store(UInt32(5), at: 50)
        #expect(parseError(bytes) == .tooManyDimensions(name: "t", count: 5, offset: 41))

        bytes = minimalFile()
        bytes.store(UInt64(1) << 63, at: 54)
        #expect(parseError(bytes) == .invalidDimensions(name: "t", dimensions: [1 << 63], offset: 41))

        var writer = GGUFWriter()
        writer.addTensor(name: "m", dimensions: [2, 2], floats: [1, 2, 3, 4])
        bytes = writer.bytes()
        // name at 24..<33, n_dims 33, ne0 37, ne1 45.
        bytes.store(UInt64(1) << 40, at: 37)
        bytes.store(UInt64(1) << 40, at: 45)
        #expect(parseError(bytes) == .invalidDimensions(name: "m", dimensions: [1 << 40, 1 << 40], offset: 24))
        // Product fits Int but the byte size (×4) does not.
        bytes.store(UInt64(1) << 31, at: 37)
        bytes.store(UInt64(1) << 31, at: 45)
        #expect(parseError(bytes) == .invalidDimensions(name: "m", dimensions: [1 << 31, 1 << 31], offset: 24))
    }

    @Test func rowNotMultipleOfBlock() {
        var writer = GGUFWriter()
        writer.addTensor(name: "q", type: .q8_0, dimensions: [32], floats: randomFloats(32, seed: 9))
        var bytes = writer.bytes()
        bytes.store(UInt64(16), at: 37)
        #expect(parseError(bytes) == .rowNotBlockAligned(name: "q", rowLength: 16, type: .q8_0, offset: 24))
    }

    @Test func misalignedTensorOffset() {
        var bytes = minimalFile()
        bytes.store(UInt64(4), at: 66)
        #expect(parseError(bytes) == .misalignedTensor(name: "t", offset: 4, alignment: 32))
    }

    @Test func overlappingTensors() {
        var writer = GGUFWriter()
        writer.addTensor(name: "x", dimensions: [8], floats: Array(repeating: 1, count: 8))
        writer.addTensor(name: "y", dimensions: [8], floats: Array(repeating: 2, count: 8))
        var bytes = writer.bytes()
        let y = bytes.firstOffset(of: Array("y".utf8) + [1, 0, 0, 0])!
        bytes.store(UInt64(0), at: y + 1 + 4 + 8 + 4)
        #expect(parseError(bytes) == .overlappingTensors("x", "y"))
    }

    @Test func duplicates() {
        var writer = GGUFWriter()
        writer.set("k1", .bool(true))
        writer.set("k2", .bool(false))
        writer.addTensor(name: "t1", dimensions: [1], floats: [0])
        writer.addTensor(name: "t2", dimensions: [1], floats: [0])
        let original = writer.bytes()

        var bytes = original
        let k2 = bytes.firstOffset(of: Array("k2".utf8))!
        bytes[k2 + 1] = UInt8(ascii: "1")
        #expect(parseError(bytes) == .duplicateKey("k1", offset: k2 - 8))

        bytes = original
        let t2 = bytes.firstOffset(of: Array("t2".utf8))!
        bytes[t2 + 1] = UInt8(ascii: "1")
        #expect(parseError(bytes) == .duplicateTensor("t1", offset: t2 - 8))
    }

    @Test func invalidUTF8() {
        var bytes = minimalFile()
        bytes[32] = 0xFF
        #expect(parseError(bytes) == .invalidString(what: "key of metadata entry #0", offset: 24))

        var writer = GGUFWriter()
        writer.set("tokenizer.ggml.tokens", .array([.string("ok"), .string("é")]))
        bytes = writer.bytes()
        let e = bytes.firstOffset(of: Array("é".utf8))!
        bytes[e + 1] = 0x41   // a lead byte followed by ASCII
        let error = parseError(bytes)
        #expect(error == .invalidString(what: "string #1 of key 'tokenizer.ggml.tokens'", offset: e - 8))
        #expect(error?.description.contains("tokenizer.ggml.tokens") == true)
    }

    @Test func badAlignment() {
        var writer = GGUFWriter(alignment: 64)
        writer.addTensor(name: "t", dimensions: [4], floats: [1, 2, 3, 4])
        // general.alignment is emitted first: key length 24, key 32..<49, type 49, value 53.
        for bad: UInt32 in [0, 48, 3] {
            var bytes = writer.bytes()
            bytes.store(bad, at: 53)
            #expect(parseError(bytes) == .invalidAlignment("uint32(\(bad))"))
        }
        var bytes = writer.bytes()
        bytes.store(UInt32(8), at: 49)   // now a string value
        #expect(parseError(bytes) != nil)
    }

    @Test func deeplyNestedArraysAreRejected() {
        var value = GGUFValue.array([])
        for _ in 0..<20 { value = .array([value]) }
        var writer = GGUFWriter()
        writer.set("deep", value)
        guard case .nestingTooDeep(let key, _) = parseError(writer.bytes()) else {
            Issue.record("expected nestingTooDeep")
            return
        }
        #expect(key == "deep")
    }

    /// Every prefix shorter than the end of the last tensor's data must fail; longer ones
    /// (cutting only trailing padding) may still parse.
    @Test func everyTruncationFails() throws {
        let full = sampleWriter(alignment: 64).bytes()
        let file = try GGUFFile(bytes: full)
        let needed = file.dataOffset + file.tensors.map { $0.offset + $0.byteCount }.max()!
        for length in 0..<needed {
            #expect(parseError(Array(full[0..<length])) != nil, "prefix of \(length) bytes parsed")
        }
        for length in needed...full.count {
            #expect(parseError(Array(full[0..<length])) == nil, "prefix of \(length) bytes")
        }
    }

    /// Single-bit flips, byte replacements and 8-byte smears across the header, metadata and
    /// tensor directory: the parser may accept or reject, but must never trap or read out of bounds.
    @Test(arguments: [UInt64(1), 2, 3])
    func randomCorruptionNeverCrashes(seed: UInt64) throws {
        let original = sampleWriter().bytes()
        let headerEnd = try GGUFFile(bytes: original).dataOffset
        var rng = SplitMix64(seed: seed)
        var rejected = 0
        for round in 0..<1500 {
            var bytes = original
            let position = Int.random(in: 0..<headerEnd, using: &rng)
            switch round % 3 {
            case 0: bytes[position] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            case 1: bytes[position] = UInt8.random(in: 0...255, using: &rng)
            default:
                for i in position..<min(position + 8, bytes.count) { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
            }
            do {
                let file = try GGUFFile(bytes: bytes)
                var checksum = 0
                for info in file.tensors {
                    for byte in file.tensorData(info) { checksum &+= Int(byte) }
                }
                _ = checksum
            } catch {
                rejected += 1
                #expect(!error.description.isEmpty)
            }
        }
        #expect(rejected > 100)
    }
}
