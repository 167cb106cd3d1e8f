import Foundation
import Testing
import GGUF

@Suite("Writer → reader round trip")
struct RoundTripTests {
    @Test(arguments: [(UInt32(3), 32), (3, 64), (2, 32), (2, 64), (3, 1), (3, 4096)])
    func everyValueAndTensorSurvives(version: UInt32, alignment: Int) throws {
        let bytes = sampleWriter(alignment: alignment, version: version).bytes()
        let file = try GGUFFile(bytes: bytes)

        #expect(file.version == version)
        #expect(file.alignment == alignment)
        #expect(file.fileSize == bytes.count)
        #expect(file.dataOffset % alignment == 0)

        var expectedKeys = sampleMetadata.map(\.0)
        if alignment != 32 { expectedKeys.insert("general.alignment", at: 0) }
        #expect(file.metadataKeys == expectedKeys)
        for (key, value) in sampleMetadata {
            #expect(file.metadata[key] == value, "\(key)")
        }
        if alignment != 32 { #expect(file.metadata["general.alignment"] == .uint32(UInt32(alignment))) }

        let expected = sampleTensors()
        #expect(file.tensors.map(\.name) == expected.map(\.0))
        for (name, type, dims, data) in expected {
            let (info, view) = try file.tensorData(named: name)
            #expect(info.type == type)
            #expect(info.dimensions == dims)
            #expect(info.elementCount == dims.reduce(1, *))
            #expect(info.byteCount == data.count)
            #expect(info.offset % alignment == 0)
            #expect(Array(view) == data, "\(name)")
            if let base = view.baseAddress {
                #expect(Int(bitPattern: base) % min(alignment, 4096) == 0, "\(name) data is aligned in memory")
            }
        }
    }

    @Test func mappedFileMatchesInMemoryParse() throws {
        let writer = sampleWriter(alignment: 64)
        let path = temporaryPath("mapped.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try writer.write(to: path)

        let mapped = try GGUFFile(path: path)
        let copied = try GGUFFile(bytes: writer.bytes())
        #expect(mapped.metadata == copied.metadata)
        #expect(mapped.metadataKeys == copied.metadataKeys)
        #expect(mapped.tensors == copied.tensors)
        for info in mapped.tensors {
            #expect(Array(mapped.tensorData(info)) == Array(copied.tensorData(info)))
            if let base = mapped.tensorData(info).baseAddress {
                #expect(Int(bitPattern: base) % 64 == 0)
            }
        }
    }

    @Test func emptyFileHasNoTensorsOrKeys() throws {
        let file = try GGUFFile(bytes: GGUFWriter().bytes())
        #expect(file.tensors.isEmpty)
        #expect(file.metadataKeys.isEmpty)
        #expect(file.architecture == nil)
        #expect(file.alignment == 32)
    }

    @Test func convenienceTensorAdders() throws {
        var writer = GGUFWriter()
        let floats = randomFloats(64, seed: 42)
        writer.addTensor(name: "plain", dimensions: [32, 2], floats: floats)
        writer.addTensor(name: "quantized", type: .q8_0, dimensions: [64], floats: floats)
        let file = try GGUFFile(bytes: writer.bytes())

        let (plain, plainData) = try file.tensorData(named: "plain")
        #expect(plain.type == .f32)
        #expect(plain.rowCount == 2)
        #expect(Array(plainData.bindMemory(to: Float.self)) == floats)
        let (quantized, quantizedData) = try file.tensorData(named: "quantized")
        #expect(quantized.byteCount == 34 * 2)
        #expect(Array(quantizedData) == quantize(floats, to: .q8_0))
    }

    @Test func settingAKeyTwiceReplacesInPlace() throws {
        var writer = GGUFWriter()
        writer.set("a", .uint8(1))
        writer.set("b", .uint8(2))
        writer.set("a", .string("again"))
        let file = try GGUFFile(bytes: writer.bytes())
        #expect(file.metadataKeys == ["a", "b"])
        #expect(file.metadata["a"] == .string("again"))
    }
}

@Suite("Typed metadata and tensor lookups")
struct LookupTests {
    let file: GGUFFile

    init() throws {
        file = try GGUFFile(bytes: sampleWriter().bytes())
    }

    @Test func typedAccessors() throws {
        #expect(file.architecture == "llama")
        #expect(try file.requireInt("llama.block_count") == 2)
        #expect(try file.requireInt("test.i64") == Int(Int64.min))
        #expect(try file.requireDouble("test.f32") == 3.25)
        #expect(try file.requireDouble("test.u16") == 60000)
        #expect(try file.requireString("general.name") == "héllo wörld 🌍")
        #expect(try file.requireBool("test.true"))
        #expect(try file.requireStringArray("test.strings") == ["a", "", "Ġthe", "日本"])
        #expect(try file.requireIntArray("test.ints") == [1, -2, 3])
        #expect(try file.requireFloatArray("test.floats") == [0.5, -1.5])
        #expect(file.int("test.u8") == 200)
        #expect(file.int("missing") == nil)
        #expect(file.int("general.name") == nil)
        #expect(file.int("test.u64") == nil, "UInt64.max does not fit Int")
        #expect(file.double("test.f64") == -1e300)
        #expect(file.string("test.u8") == nil)
        #expect(file.bool("test.false") == false)
        #expect(file.stringArray("test.ints") == nil)
        #expect(GGUFValue.array([.array([])]).intArray == nil)
    }

    @Test func missingAndMistypedKeysNameTheKey() {
        #expect(throws: GGUFError.missingKey("llama.context_length")) {
            try file.requireInt("llama.context_length")
        }
        do {
            _ = try file.requireInt("general.name")
            Issue.record("expected wrongType")
        } catch {
            guard case .wrongType(let key, let expected) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(key == "general.name")
            #expect(expected.contains("integer") && expected.contains("string"))
            #expect(error.description.contains("general.name"))
        }
        #expect(throws: GGUFError.self) { try file.requireString("test.u32") }
        #expect(throws: GGUFError.self) { try file.requireStringArray("test.nested_strings") }
    }

    @Test func tensorLookups() throws {
        #expect(file.tensor(named: "q8_0")?.dimensions == [64, 2])
        #expect(file.tensor(named: "nope") == nil)
        #expect(throws: GGUFError.missingTensor("nope")) { try file.tensorData(named: "nope") }
        let (empty, data) = try file.tensorData(named: "empty")
        #expect(empty.elementCount == 0 && data.isEmpty)
    }

    @Test func typeTable() {
        #expect(GGMLType.q4_1.name == "Q4_1")
        #expect(GGMLType.q8_0.blockSize == 32 && GGMLType.q8_0.typeSize == 34)
        #expect(GGMLType.q4_K.blockSize == 256 && GGMLType.q4_K.typeSize == 144)
        #expect(GGMLType.q6_K.typeSize == 210)
        #expect(GGMLType.bf16.rawValue == 30 && GGMLType.bf16.typeSize == 2)
        #expect(GGMLType(rawValue: 4) == nil && GGMLType(rawValue: 5) == nil)
        #expect(GGMLType.q4_0.byteCount(elements: 64) == 36)
        #expect(GGMLType.q4_0.byteCount(elements: 33) == nil)
        #expect(Set(GGMLType.allCases.map(\.name)).count == GGMLType.allCases.count)
    }
}

@Suite("Opening files from disk")
struct OpenFileTests {
    @Test func missingFile() {
        #expect(throws: GGUFError.fileNotFound("/nonexistent/model.gguf")) {
            try GGUFFile(path: "/nonexistent/model.gguf")
        }
    }

    @Test func directoryIsRejected() {
        #expect(throws: GGUFError.cannotOpen(path: "/tmp", reason: "not a regular file")) {
            try GGUFFile(path: "/tmp")
        }
    }

    @Test func emptyFileIsTruncated() throws {
        let path = temporaryPath("empty.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        #expect(throws: GGUFError.truncated(what: "magic", offset: 0)) { try GGUFFile(path: path) }
    }

    @Test func writeToUnwritablePathFails() {
        #expect(throws: GGUFError.self) { try GGUFWriter().write(to: "/nonexistent/dir/x.gguf") }
    }
}
