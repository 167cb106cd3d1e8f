/// Everything that can go wrong opening, validating, querying or writing a GGUF file.
///
/// Offsets are absolute byte offsets into the file unless a case says otherwise.
public enum GGUFError: Error, CustomStringConvertible, Equatable {
    // Opening the file.
    case fileNotFound(String)
    case cannotOpen(path: String, reason: String)

    // Header.
    case notGGUF(magic: UInt32)
    case unsupportedVersion(UInt32)

    // Structure: the file ends early, or a length/count claims more than the file holds.
    case truncated(what: String, offset: Int)
    case countTooLarge(what: String, count: UInt64, offset: Int, remaining: Int)
    case invalidString(what: String, offset: Int)

    // Metadata.
    case unknownValueType(UInt32, key: String, offset: Int)
    case nestingTooDeep(key: String, offset: Int)
    case duplicateKey(String, offset: Int)
    case invalidAlignment(String)

    // Tensor directory. `offset` in tensor cases is where the tensor's info record starts,
    // except in `misalignedTensor`, where it is the tensor's data offset.
    case tooManyDimensions(name: String, count: UInt32, offset: Int)
    case invalidDimensions(name: String, dimensions: [UInt64], offset: Int)
    case unknownTensorType(UInt32, tensor: String, offset: Int)
    case rowNotBlockAligned(name: String, rowLength: Int, type: GGMLType, offset: Int)
    case duplicateTensor(String, offset: Int)
    case misalignedTensor(name: String, offset: Int, alignment: Int)
    case tensorOutOfBounds(name: String, offset: Int, byteCount: Int, dataSize: Int)
    case overlappingTensors(String, String)

    // Queries.
    case missingKey(String)
    case wrongType(key: String, expected: String)
    case missingTensor(String)

    // Writing.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            "GGUF file not found: \(path)"
        case .cannotOpen(let path, let reason):
            "cannot open GGUF file \(path): \(reason)"
        case .notGGUF(let magic):
            "not a GGUF file: magic at offset 0 is \(hex(magic)) (expected 0x46554747, \"GGUF\")"
        case .unsupportedVersion(let v):
            if v == 1 {
                "GGUF version 1 at offset 4 is not supported (32-bit counts); re-convert the model to v3"
            } else if (2...3).contains(v.byteSwapped) {
                "GGUF version \(v) at offset 4 is not supported: this looks like a big-endian GGUF file"
            } else {
                "GGUF version \(v) at offset 4 is not supported (expected 2 or 3)"
            }
        case .truncated(let what, let offset):
            "GGUF file truncated: \(what) at offset \(offset) runs past the end of the file"
        case .countTooLarge(let what, let count, let offset, let remaining):
            "GGUF \(what) at offset \(offset) is \(count), more than the \(remaining) bytes left in the file can hold"
        case .invalidString(let what, let offset):
            "GGUF \(what) at offset \(offset) is not valid UTF-8"
        case .unknownValueType(let t, let key, let offset):
            "GGUF key '\(key)': unknown value type \(t) at offset \(offset)"
        case .nestingTooDeep(let key, let offset):
            "GGUF key '\(key)': arrays nested too deeply at offset \(offset)"
        case .duplicateKey(let key, let offset):
            "GGUF key '\(key)' at offset \(offset) appears more than once"
        case .invalidAlignment(let value):
            "GGUF general.alignment must be a nonzero power-of-two integer, found \(value)"
        case .tooManyDimensions(let name, let count, let offset):
            "GGUF tensor '\(name)' (info at offset \(offset)) has \(count) dimensions; at most 4 are allowed"
        case .invalidDimensions(let name, let dims, let offset):
            "GGUF tensor '\(name)' (info at offset \(offset)) has invalid dimensions \(dims): negative or element count overflows"
        case .unknownTensorType(let t, let name, let offset):
            "GGUF tensor '\(name)' (info at offset \(offset)) has unknown ggml type \(t)"
        case .rowNotBlockAligned(let name, let rowLength, let type, let offset):
            "GGUF tensor '\(name)' (info at offset \(offset)): row length \(rowLength) is not a multiple of \(type.name)'s block size \(type.blockSize)"
        case .duplicateTensor(let name, let offset):
            "GGUF tensor '\(name)' (info at offset \(offset)) appears more than once"
        case .misalignedTensor(let name, let offset, let alignment):
            "GGUF tensor '\(name)': data offset \(offset) is not a multiple of the alignment \(alignment)"
        case .tensorOutOfBounds(let name, let offset, let byteCount, let dataSize):
            "GGUF tensor '\(name)': data at offset \(offset) (+\(byteCount) bytes) extends past the \(dataSize)-byte data section"
        case .overlappingTensors(let a, let b):
            "GGUF tensors '\(a)' and '\(b)' have overlapping data"
        case .missingKey(let key):
            "GGUF metadata key '\(key)' is missing"
        case .wrongType(let key, let expected):
            "GGUF metadata key '\(key)' is not of the expected type (\(expected))"
        case .missingTensor(let name):
            "GGUF tensor '\(name)' is missing"
        case .writeFailed(let path, let reason):
            "cannot write GGUF file \(path): \(reason)"
        }
    }
}

private func hex(_ v: UInt32) -> String {
    let digits = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}
