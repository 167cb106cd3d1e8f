/// One entry of a GGUF tensor directory.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// Sizes in ggml order: `dimensions[0]` (ne0) is the row length, the fastest-varying axis.
    public let dimensions: [Int]
    public let type: GGMLType
    /// Byte offset of the tensor's data, relative to the start of the file's data section.
    public let offset: Int
    /// Product of `dimensions` (1 for a zero-dimensional tensor).
    public let elementCount: Int
    /// Size of the tensor's data: `elementCount / type.blockSize * type.typeSize`.
    public let byteCount: Int

    /// Builds an info from trusted values; traps if the shape overflows or does not fit
    /// the type's blocks. Files are validated by `GGUFFile` instead, which throws.
    public init(name: String, type: GGMLType, dimensions: [Int], offset: Int) {
        let elements = dimensions.reduce(1, *)
        guard let bytes = type.byteCount(elements: elements),
              (dimensions.first ?? 1) % type.blockSize == 0 else {
            preconditionFailure("tensor '\(name)': shape \(dimensions) does not fit \(type.name) blocks")
        }
        self.init(name: name, dimensions: dimensions, type: type, offset: offset,
                  elementCount: elements, byteCount: bytes)
    }

    init(name: String, dimensions: [Int], type: GGMLType, offset: Int, elementCount: Int, byteCount: Int) {
        self.name = name
        self.dimensions = dimensions
        self.type = type
        self.offset = offset
        self.elementCount = elementCount
        self.byteCount = byteCount
    }

    /// Number of rows when viewed as a matrix of `dimensions[0]`-long rows.
    public var rowCount: Int { dimensions.isEmpty ? 1 : elementCount / max(dimensions[0], 1) }
}
