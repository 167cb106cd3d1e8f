/// A validated, read-only GGUF file: metadata, tensor directory and zero-copy views of tensor data.
///
/// The whole header, metadata and tensor directory are parsed and checked when the object is
/// created; afterwards every query is a lookup. Tensor views point into the mapping (or copy)
/// owned by this object and stay valid exactly as long as it does.
public final class GGUFFile: @unchecked Sendable {
    // Immutable after init, so sharing across threads is safe; the buffer is never written.
    private let buffer: FileBuffer
    private let tensorIndex: [String: Int]

    /// 2 or 3.
    public let version: UInt32
    /// `general.alignment`, or 32 when absent.
    public let alignment: Int
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Tensor directory in file order.
    public let tensors: [GGUFTensorInfo]
    /// Absolute file offset where the data section (and `GGUFTensorInfo.offset` 0) begins.
    public let dataOffset: Int

    /// Memory-maps the file at `path` (`PROT_READ`, `MAP_PRIVATE`) and validates it.
    public convenience init(path: String) throws(GGUFError) {
        try self.init(buffer: try FileBuffer(mapping: path))
    }

    /// Parses an in-memory copy of a GGUF file's bytes.
    public convenience init(bytes: [UInt8]) throws(GGUFError) {
        try self.init(buffer: FileBuffer(copying: bytes))
    }

    private init(buffer: FileBuffer) throws(GGUFError) {
        let parsed = try GGUFParser.parse(buffer.bytes)
        self.buffer = buffer
        self.tensorIndex = parsed.tensorIndex
        self.version = parsed.version
        self.alignment = parsed.alignment
        self.metadata = parsed.metadata
        self.metadataKeys = parsed.metadataKeys
        self.tensors = parsed.tensors
        self.dataOffset = parsed.dataOffset
    }

    /// Size of the file in bytes.
    public var fileSize: Int { buffer.bytes.count }

    /// `general.architecture`, e.g. "llama".
    public var architecture: String? { metadata["general.architecture"]?.string }

    // MARK: Tensors

    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The bytes of a tensor from this file's directory, valid for this object's lifetime.
    public func tensorData(_ info: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        let start = dataOffset + info.offset
        // Infos from this file were bounds-checked at open; this only catches foreign ones.
        precondition(info.offset >= 0 && info.byteCount >= 0 && start <= fileSize - info.byteCount,
                     "tensor '\(info.name)' does not belong to this GGUF file")
        return UnsafeRawBufferPointer(rebasing: buffer.bytes[start..<start + info.byteCount])
    }

    /// Looks a tensor up by name and returns its info and bytes.
    public func tensorData(named name: String) throws(GGUFError) -> (GGUFTensorInfo, UnsafeRawBufferPointer) {
        guard let info = tensor(named: name) else { throw .missingTensor(name) }
        return (info, tensorData(info))
    }

    // MARK: Typed metadata

    /// The value for `key` as an `Int`; nil when missing or not an integer.
    public func int(_ key: String) -> Int? { metadata[key]?.int }
    /// The value for `key` as a `Double` (any numeric type); nil when missing or not numeric.
    public func double(_ key: String) -> Double? { metadata[key]?.double }
    /// The value for `key` as a `String`; nil when missing or not a string.
    public func string(_ key: String) -> String? { metadata[key]?.string }
    /// The value for `key` as a `Bool`; nil when missing or not a bool.
    public func bool(_ key: String) -> Bool? { metadata[key]?.bool }
    /// The value for `key` as a `[String]`; nil when missing or not an array of strings.
    public func stringArray(_ key: String) -> [String]? { metadata[key]?.stringArray }

    public func requireInt(_ key: String) throws(GGUFError) -> Int {
        try require(key, "integer") { $0.int }
    }

    public func requireDouble(_ key: String) throws(GGUFError) -> Double {
        try require(key, "number") { $0.double }
    }

    public func requireString(_ key: String) throws(GGUFError) -> String {
        try require(key, "string") { $0.string }
    }

    public func requireBool(_ key: String) throws(GGUFError) -> Bool {
        try require(key, "bool") { $0.bool }
    }

    public func requireStringArray(_ key: String) throws(GGUFError) -> [String] {
        try require(key, "array of strings") { $0.stringArray }
    }

    public func requireIntArray(_ key: String) throws(GGUFError) -> [Int] {
        try require(key, "array of integers") { $0.intArray }
    }

    public func requireFloatArray(_ key: String) throws(GGUFError) -> [Float] {
        try require(key, "array of numbers") { $0.floatArray }
    }

    private func require<T>(
        _ key: String, _ expected: String, _ convert: (GGUFValue) -> T?
    ) throws(GGUFError) -> T {
        guard let value = metadata[key] else { throw .missingKey(key) }
        guard let converted = convert(value) else {
            throw .wrongType(key: key, expected: "\(expected), found \(value.typeName)")
        }
        return converted
    }
}
