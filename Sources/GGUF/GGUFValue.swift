/// A metadata value as stored in a GGUF key/value pair.
///
/// Arrays are homogeneous in the file; `GGUFWriter` enforces that when writing.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])
    case uint64(UInt64)
    case int64(Int64)
    case float64(Double)

    /// The value as `Int` for any integer case; nil for other cases or a `uint64` above `Int.max`.
    public var int: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): Int(exactly: v)
        case .int64(let v): Int(v)
        default: nil
        }
    }

    /// The value as `Double` for any integer or floating-point case.
    public var double: Double? {
        switch self {
        case .float32(let v): Double(v)
        case .float64(let v): v
        case .uint64(let v): Double(v)
        default: int.map(Double.init)
        }
    }

    public var bool: Bool? {
        if case .bool(let v) = self { return v }
        return nil
    }

    public var string: String? {
        if case .string(let v) = self { return v }
        return nil
    }

    public var array: [GGUFValue]? {
        if case .array(let v) = self { return v }
        return nil
    }

    /// The elements of a string array; nil if this is not an array or any element is not a string.
    public var stringArray: [String]? {
        guard case .array(let elements) = self else { return nil }
        var out: [String] = []
        out.reserveCapacity(elements.count)
        for element in elements {
            guard case .string(let s) = element else { return nil }
            out.append(s)
        }
        return out
    }

    /// The elements of an integer array (any integer element type).
    public var intArray: [Int]? {
        guard case .array(let elements) = self else { return nil }
        var out: [Int] = []
        out.reserveCapacity(elements.count)
        for element in elements {
            guard let v = element.int else { return nil }
            out.append(v)
        }
        return out
    }

    /// The elements of a numeric array as `Float` (e.g. `tokenizer.ggml.scores`).
    public var floatArray: [Float]? {
        guard case .array(let elements) = self else { return nil }
        var out: [Float] = []
        out.reserveCapacity(elements.count)
        for element in elements {
            if case .float32(let v) = element {
                out.append(v)
            } else if let v = element.double {
                out.append(Float(v))
            } else {
                return nil
            }
        }
        return out
    }

    /// The GGUF type name of this value ("uint32", "array", ...), for error messages.
    public var typeName: String { valueType.name }

    var valueType: GGUFValueType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .float32: .float32
        case .bool: .bool
        case .string: .string
        case .array: .array
        case .uint64: .uint64
        case .int64: .int64
        case .float64: .float64
        }
    }
}

/// The on-disk value type tags.
enum GGUFValueType: UInt32 {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6
    case bool = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Encoded size of a scalar; nil for strings and arrays, whose size depends on content.
    var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64: 8
        case .string, .array: nil
        }
    }

    /// The fewest bytes one value of this type can occupy; bounds array counts before allocating.
    var minimumSize: Int {
        switch self {
        case .string: 8           // length prefix
        case .array: 12           // element type + count
        default: fixedSize!
        }
    }

    var name: String {
        switch self {
        case .uint8: "uint8"
        case .int8: "int8"
        case .uint16: "uint16"
        case .int16: "int16"
        case .uint32: "uint32"
        case .int32: "int32"
        case .float32: "float32"
        case .bool: "bool"
        case .string: "string"
        case .array: "array"
        case .uint64: "uint64"
        case .int64: "int64"
        case .float64: "float64"
        }
    }
}
