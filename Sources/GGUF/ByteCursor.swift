/// A forward-only reader over untrusted bytes: every read is bounds-checked and reports
/// what it was reading, so a short or corrupted file becomes a `GGUFError`, never a trap.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset: Int = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    var remaining: Int { bytes.count - offset }

    mutating func read<T: FixedWidthInteger>(
        _: T.Type, _ what: @autoclosure () -> String
    ) throws(GGUFError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw .truncated(what: what(), offset: offset) }
        let raw = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(littleEndian: raw)
    }

    /// Reads a `uint64` count and rejects it if `count * minimumSize` exceeds the bytes left,
    /// so callers can allocate `count` slots without trusting the file.
    mutating func readCount(
        minimumSize: Int, _ what: @autoclosure () -> String
    ) throws(GGUFError) -> Int {
        let at = offset
        let count = try read(UInt64.self, what())
        guard count <= UInt64(remaining / max(minimumSize, 1)) else {
            throw .countTooLarge(what: what(), count: count, offset: at, remaining: remaining)
        }
        return Int(count)
    }

    /// A gguf string: `uint64` byte length, then UTF-8 bytes without a terminator.
    mutating func readString(_ what: @autoclosure () -> String) throws(GGUFError) -> String {
        let at = offset
        let length = try readCount(minimumSize: 1, "length of " + what())
        let start = offset
        offset += length
        guard length > 0 else { return "" }
        let utf8 = UnsafeBufferPointer(
            start: (bytes.baseAddress! + start).assumingMemoryBound(to: UInt8.self), count: length)
        guard let s = decodeUTF8(utf8) else { throw .invalidString(what: what(), offset: at) }
        return s
    }
}

/// Validating decode: invalid UTF-8 is a file error rather than being silently repaired.
@inline(__always)
private func decodeUTF8(_ utf8: UnsafeBufferPointer<UInt8>) -> String? {
    String(validating: utf8, as: UTF8.self)
}
