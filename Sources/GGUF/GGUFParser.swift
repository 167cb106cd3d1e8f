/// Everything `GGUFFile` learns from the header, metadata and tensor directory.
struct ParsedGGUF {
    var version: UInt32
    var alignment: Int
    var metadata: [String: GGUFValue]
    var metadataKeys: [String]
    var tensors: [GGUFTensorInfo]
    var tensorIndex: [String: Int]
    /// Absolute offset of the data section.
    var dataOffset: Int
}

/// Parses and validates a whole GGUF v2/v3 file up front, so that once a `GGUFFile` exists,
/// every tensor's bytes are known to lie inside the buffer without overlapping another's.
enum GGUFParser {
    /// "GGUF" read as a little-endian `uint32`.
    static let magic: UInt32 = 0x4655_4747
    static let defaultAlignment = 32
    /// GGUF nests arrays rarely (ggml itself refuses it); the cap keeps recursion off the stack limit.
    static let maxArrayNesting = 8
    static let maxDimensions = 4
    /// Smallest possible tensor info: name length, n_dims, type, offset.
    static let minTensorInfoSize = 8 + 4 + 4 + 8
    /// Smallest possible key/value pair: key length, value type, one-byte value.
    static let minKeyValueSize = 8 + 4 + 1

    static func parse(_ bytes: UnsafeRawBufferPointer) throws(GGUFError) -> ParsedGGUF {
        var cursor = ByteCursor(bytes)
        let magic = try cursor.read(UInt32.self, "magic")
        guard magic == Self.magic else { throw .notGGUF(magic: magic) }
        let version = try cursor.read(UInt32.self, "version")
        guard version == 2 || version == 3 else { throw .unsupportedVersion(version) }
        let tensorCount = try cursor.readCount(minimumSize: minTensorInfoSize, "tensor count")
        let kvCount = try cursor.readCount(minimumSize: minKeyValueSize, "metadata key/value count")

        var metadata: [String: GGUFValue] = [:]
        metadata.reserveCapacity(kvCount)
        var keys: [String] = []
        keys.reserveCapacity(kvCount)
        for i in 0..<kvCount {
            let keyOffset = cursor.offset
            let key = try cursor.readString("key of metadata entry #\(i)")
            let value = try readTypedValue(&cursor, key: key, depth: 0)
            guard metadata.updateValue(value, forKey: key) == nil else {
                throw .duplicateKey(key, offset: keyOffset)
            }
            keys.append(key)
        }

        let alignment = try alignment(from: metadata)
        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(tensorCount)
        var tensorIndex: [String: Int] = [:]
        tensorIndex.reserveCapacity(tensorCount)
        for i in 0..<tensorCount {
            let infoOffset = cursor.offset
            let info = try readTensorInfo(&cursor, index: i, alignment: alignment)
            guard tensorIndex.updateValue(i, forKey: info.name) == nil else {
                throw .duplicateTensor(info.name, offset: infoOffset)
            }
            tensors.append(info)
        }

        // The data section begins at the next alignment boundary; with no tensors it may lie past EOF.
        let (padded, overflow) = cursor.offset.addingReportingOverflow(alignment - 1)
        guard !overflow else { throw .invalidAlignment("\(alignment)") }
        let dataOffset = padded & ~(alignment - 1)
        // Even an empty tensor's data starts somewhere: inside the file, or at its very end.
        if !tensors.isEmpty && dataOffset > bytes.count { throw .truncated(what: "tensor data section", offset: dataOffset) }
        try checkPlacement(tensors, dataSize: max(0, bytes.count - dataOffset))

        return ParsedGGUF(version: version, alignment: alignment, metadata: metadata, metadataKeys: keys,
                          tensors: tensors, tensorIndex: tensorIndex, dataOffset: dataOffset)
    }

    // MARK: Metadata values

    private static func readTypedValue(
        _ cursor: inout ByteCursor, key: String, depth: Int
    ) throws(GGUFError) -> GGUFValue {
        let typeOffset = cursor.offset
        let raw = try cursor.read(UInt32.self, "value type of key '\(key)'")
        guard let type = GGUFValueType(rawValue: raw) else {
            throw .unknownValueType(raw, key: key, offset: typeOffset)
        }
        return try readValue(type, &cursor, key: key, depth: depth)
    }

    private static func readValue(
        _ type: GGUFValueType, _ cursor: inout ByteCursor, key: String, depth: Int
    ) throws(GGUFError) -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try cursor.read(UInt8.self, "value of key '\(key)'"))
        case .int8: return .int8(try cursor.read(Int8.self, "value of key '\(key)'"))
        case .uint16: return .uint16(try cursor.read(UInt16.self, "value of key '\(key)'"))
        case .int16: return .int16(try cursor.read(Int16.self, "value of key '\(key)'"))
        case .uint32: return .uint32(try cursor.read(UInt32.self, "value of key '\(key)'"))
        case .int32: return .int32(try cursor.read(Int32.self, "value of key '\(key)'"))
        case .uint64: return .uint64(try cursor.read(UInt64.self, "value of key '\(key)'"))
        case .int64: return .int64(try cursor.read(Int64.self, "value of key '\(key)'"))
        case .float32:
            return .float32(Float(bitPattern: try cursor.read(UInt32.self, "value of key '\(key)'")))
        case .float64:
            return .float64(Double(bitPattern: try cursor.read(UInt64.self, "value of key '\(key)'")))
        case .bool:
            // ggml writes 0/1; any other byte is read as true rather than rejected, as ggml does.
            return .bool(try cursor.read(UInt8.self, "value of key '\(key)'") != 0)
        case .string:
            return .string(try cursor.readString("string value of key '\(key)'"))
        case .array:
            return .array(try readArray(&cursor, key: key, depth: depth))
        }
    }

    private static func readArray(
        _ cursor: inout ByteCursor, key: String, depth: Int
    ) throws(GGUFError) -> [GGUFValue] {
        guard depth < maxArrayNesting else { throw .nestingTooDeep(key: key, offset: cursor.offset) }
        let typeOffset = cursor.offset
        let raw = try cursor.read(UInt32.self, "array element type of key '\(key)'")
        guard let elementType = GGUFValueType(rawValue: raw) else {
            throw .unknownValueType(raw, key: key, offset: typeOffset)
        }
        // Bounded by the bytes left, so a corrupt count cannot trigger a huge allocation.
        let count = try cursor.readCount(minimumSize: elementType.minimumSize, "array length of key '\(key)'")
        var elements: [GGUFValue] = []
        elements.reserveCapacity(count)
        if elementType == .string {
            // The hot path: vocabularies and merge lists hold ~50k strings each.
            for i in 0..<count {
                elements.append(.string(try cursor.readString("string #\(i) of key '\(key)'")))
            }
        } else {
            for _ in 0..<count {
                elements.append(try readValue(elementType, &cursor, key: key, depth: depth + 1))
            }
        }
        return elements
    }

    private static func alignment(from metadata: [String: GGUFValue]) throws(GGUFError) -> Int {
        guard let value = metadata["general.alignment"] else { return defaultAlignment }
        guard let a = value.int, a > 0, a & (a - 1) == 0 else { throw .invalidAlignment("\(value)") }
        return a
    }

    // MARK: Tensor directory

    private static func readTensorInfo(
        _ cursor: inout ByteCursor, index: Int, alignment: Int
    ) throws(GGUFError) -> GGUFTensorInfo {
        let infoOffset = cursor.offset
        let name = try cursor.readString("name of tensor #\(index)")
        let dimCount = try cursor.read(UInt32.self, "dimension count of tensor '\(name)'")
        guard dimCount <= maxDimensions else {
            throw .tooManyDimensions(name: name, count: dimCount, offset: infoOffset)
        }
        var rawDims: [UInt64] = []
        rawDims.reserveCapacity(Int(dimCount))
        for d in 0..<Int(dimCount) {
            rawDims.append(try cursor.read(UInt64.self, "dimension \(d) of tensor '\(name)'"))
        }
        let rawType = try cursor.read(UInt32.self, "type of tensor '\(name)'")
        let rawOffset = try cursor.read(UInt64.self, "data offset of tensor '\(name)'")

        guard let type = GGMLType(rawValue: rawType) else {
            throw .unknownTensorType(rawType, tensor: name, offset: infoOffset)
        }
        var dims: [Int] = []
        dims.reserveCapacity(rawDims.count)
        var elements = 1
        for raw in rawDims {
            guard let d = Int(exactly: raw) else {
                throw .invalidDimensions(name: name, dimensions: rawDims, offset: infoOffset)
            }
            let (product, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow else { throw .invalidDimensions(name: name, dimensions: rawDims, offset: infoOffset) }
            elements = product
            dims.append(d)
        }
        let rowLength = dims.first ?? 1
        guard rowLength % type.blockSize == 0 else {
            throw .rowNotBlockAligned(name: name, rowLength: rowLength, type: type, offset: infoOffset)
        }
        guard let byteCount = type.byteCount(elements: elements) else {
            throw .invalidDimensions(name: name, dimensions: rawDims, offset: infoOffset)
        }
        guard let offset = Int(exactly: rawOffset) else {
            throw .tensorOutOfBounds(name: name, offset: Int(clamping: rawOffset), byteCount: byteCount, dataSize: 0)
        }
        guard offset % alignment == 0 else {
            throw .misalignedTensor(name: name, offset: offset, alignment: alignment)
        }
        return GGUFTensorInfo(name: name, dimensions: dims, type: type, offset: offset,
                              elementCount: elements, byteCount: byteCount)
    }

    /// Every tensor must lie inside the data section, and no two may share bytes.
    private static func checkPlacement(_ tensors: [GGUFTensorInfo], dataSize: Int) throws(GGUFError) {
        for t in tensors where t.offset > dataSize || t.byteCount > dataSize - t.offset {
            throw .tensorOutOfBounds(name: t.name, offset: t.offset, byteCount: t.byteCount, dataSize: dataSize)
        }
        let placed = tensors.filter { $0.byteCount > 0 }.sorted { $0.offset < $1.offset }
        for (previous, next) in zip(placed, placed.dropFirst())
        where next.offset < previous.offset + previous.byteCount {
            throw .overlappingTensors(previous.name, next.name)
        }
    }
}
