import Foundation

/// Builds GGUF v3 (or v2) files in memory, e.g. tiny random-weight models for tests.
///
/// Misuse (duplicate tensor names, data of the wrong size, mixed-type arrays) is a programmer
/// error and traps; the writer never produces a file that `GGUFFile` would reject.
public struct GGUFWriter: Sendable {
    public let alignment: Int
    public let version: UInt32
    private var entries: [(key: String, value: GGUFValue)] = []
    private var keyIndex: [String: Int] = [:]
    private var infos: [GGUFTensorInfo] = []
    private var tensorNames: Set<String> = []
    /// The data section as it will be written, each tensor padded to `alignment` like ggml does.
    private var data: [UInt8] = []

    /// `alignment` must be a power of two; anything other than 32 is recorded as `general.alignment`.
    public init(alignment: Int = 32, version: UInt32 = 3) {
        precondition(alignment > 0 && alignment & (alignment - 1) == 0, "alignment must be a power of two")
        precondition(version == 2 || version == 3, "GGUFWriter writes versions 2 and 3 only")
        self.alignment = alignment
        self.version = version
    }

    /// Sets a metadata value; setting an existing key replaces its value but keeps its position.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if key == "general.alignment" {
            precondition(value.int == alignment, "general.alignment must match the writer's alignment")
        }
        validate(value, key: key)
        if let i = keyIndex[key] {
            entries[i].value = value
        } else {
            keyIndex[key] = entries.count
            entries.append((key, value))
        }
    }

    /// Adds a tensor whose `data` is already in `type`'s block layout.
    /// `dimensions` are in ggml order (row length first).
    public mutating func addTensor(name: String, type: GGMLType, dimensions: [Int], data bytes: [UInt8]) {
        precondition(dimensions.count <= GGUFParser.maxDimensions, "tensor '\(name)': more than 4 dimensions")
        precondition(dimensions.allSatisfy { $0 >= 0 }, "tensor '\(name)': negative dimension")
        precondition(!tensorNames.contains(name), "tensor '\(name)' added twice")
        let info = GGUFTensorInfo(name: name, type: type, dimensions: dimensions, offset: data.count)
        precondition(bytes.count == info.byteCount,
                     "tensor '\(name)': \(bytes.count) bytes given, \(type.name) \(dimensions) needs \(info.byteCount)")
        tensorNames.insert(name)
        infos.append(info)
        data.append(contentsOf: bytes)
        data.append(contentsOf: repeatElement(0, count: padding(data.count)))
    }

    /// Adds an F32 tensor.
    public mutating func addTensor(name: String, dimensions: [Int], floats: [Float]) {
        addTensor(name: name, type: .f32, dimensions: dimensions, data: quantize(floats, to: .f32))
    }

    /// Adds a tensor of `type`, converting `floats` with `quantize(_:to:)`.
    public mutating func addTensor(name: String, type: GGMLType, dimensions: [Int], floats: [Float]) {
        addTensor(name: name, type: type, dimensions: dimensions, data: quantize(floats, to: type))
    }

    /// The complete file.
    public func bytes() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4096 + data.count)
        out.append(contentsOf: Array("GGUF".utf8))
        appendLE(version, to: &out)
        appendLE(UInt64(infos.count), to: &out)
        var kv = entries
        if alignment != GGUFParser.defaultAlignment && keyIndex["general.alignment"] == nil {
            kv.insert(("general.alignment", .uint32(UInt32(alignment))), at: 0)
        }
        appendLE(UInt64(kv.count), to: &out)
        for (key, value) in kv {
            appendString(key, to: &out)
            appendLE(value.valueType.rawValue, to: &out)
            appendPayload(value, to: &out)
        }
        for info in infos {
            appendString(info.name, to: &out)
            appendLE(UInt32(info.dimensions.count), to: &out)
            for d in info.dimensions { appendLE(UInt64(d), to: &out) }
            appendLE(info.type.rawValue, to: &out)
            appendLE(UInt64(info.offset), to: &out)
        }
        out.append(contentsOf: repeatElement(0, count: padding(out.count)))
        out.append(contentsOf: data)
        return out
    }

    /// Writes `bytes()` to `path`, replacing any existing file.
    public func write(to path: String) throws(GGUFError) {
        do {
            try Data(bytes()).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw .writeFailed(path: path, reason: "\(error)")
        }
    }

    private func padding(_ size: Int) -> Int {
        (alignment - size % alignment) % alignment
    }

    private func validate(_ value: GGUFValue, key: String) {
        guard case .array(let elements) = value, let first = elements.first else { return }
        precondition(elements.allSatisfy { $0.valueType == first.valueType },
                     "metadata '\(key)': array elements must all have the same type")
        for element in elements { validate(element, key: key) }
    }

    private func appendPayload(_ value: GGUFValue, to out: inout [UInt8]) {
        switch value {
        case .uint8(let v): appendLE(v, to: &out)
        case .int8(let v): appendLE(v, to: &out)
        case .uint16(let v): appendLE(v, to: &out)
        case .int16(let v): appendLE(v, to: &out)
        case .uint32(let v): appendLE(v, to: &out)
        case .int32(let v): appendLE(v, to: &out)
        case .uint64(let v): appendLE(v, to: &out)
        case .int64(let v): appendLE(v, to: &out)
        case .float32(let v): appendLE(v.bitPattern, to: &out)
        case .float64(let v): appendLE(v.bitPattern, to: &out)
        case .bool(let v): out.append(v ? 1 : 0)
        case .string(let s): appendString(s, to: &out)
        case .array(let elements):
            // An empty array's element type is unrecorded by GGUFValue; uint8 is as good as any.
            appendLE((elements.first?.valueType ?? .uint8).rawValue, to: &out)
            appendLE(UInt64(elements.count), to: &out)
            for element in elements { appendPayload(element, to: &out) }
        }
    }
}

private func appendString(_ s: String, to out: inout [UInt8]) {
    let utf8 = Array(s.utf8)
    appendLE(UInt64(utf8.count), to: &out)
    out.append(contentsOf: utf8)
}

func appendLE<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
    withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
}
