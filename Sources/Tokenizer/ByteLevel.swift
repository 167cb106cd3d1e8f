/// GPT-2's reversible byte ↔ printable-scalar mapping: vocabularies store every byte as a visible
/// character (space becomes `Ġ`, newline `Ċ`) so that merges never involve whitespace or controls.
enum ByteLevel {
    /// Scalar value that stands for each byte.
    static let byteToScalar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            if isPrintable(byte) {
                table[byte] = UInt32(byte)
            } else {
                table[byte] = next
                next += 1
            }
        }
        return table
    }()

    /// Inverse of `byteToScalar`, indexed by scalar value; -1 where the scalar is not a byte stand-in.
    static let scalarToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (byte, scalar) in byteToScalar.enumerated() { table[Int(scalar)] = Int16(byte) }
        return table
    }()

    /// The bytes GPT-2 keeps as themselves: printable Latin-1 except the soft hyphen.
    private static func isPrintable(_ byte: Int) -> Bool {
        (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
    }

    /// Byte-level spelling of raw bytes, as vocabularies store tokens.
    static func encode<S: Sequence<UInt8>>(_ bytes: S) -> String {
        var scalars = String.UnicodeScalarView()
        for byte in bytes { scalars.append(Unicode.Scalar(byteToScalar[Int(byte)])!) }
        return String(scalars)
    }

    /// Raw bytes of a byte-level token. Scalars outside the mapping (not produced by GPT-2
    /// vocabularies, but seen in hand-edited ones) are kept as their own UTF-8.
    static func decode(_ token: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(token.utf8.count)
        for scalar in token.unicodeScalars {
            let value = Int(scalar.value)
            if value < scalarToByte.count, scalarToByte[value] >= 0 {
                bytes.append(UInt8(scalarToByte[value]))
            } else {
                bytes.append(contentsOf: String(scalar).utf8)
            }
        }
        return bytes
    }
}
