import Synchronization

/// The bytes of a short word packed into three words: hashing and comparing it allocates
/// nothing, and unlike `String` keys it never conflates canonically equivalent spellings
/// (NFC and NFD "é" tokenize differently).
struct WordKey: Hashable {
    static let maxBytes = 24
    private var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0
    private var length: UInt8

    /// nil when the word is too long to be cached.
    init?(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard bytes.count <= Self.maxBytes else { return nil }
        length = UInt8(bytes.count)
        var words: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: UnsafeRawBufferPointer(bytes)) }
        (w0, w1, w2) = words
    }
}

/// Token ids of recently encoded words, shared by all callers of a tokenizer. Prose repeats a
/// small set of words, so most BPE runs are skipped.
final class WordCache: Sendable {
    /// Cleared wholesale when full: simpler than LRU, and refilling costs one BPE run per word.
    private static let capacity = 1 << 16
    private let storage = Mutex<[WordKey: [Int32]]>([:])

    /// Appends the cached ids for `key` to `out`; false on a miss.
    @inline(__always)
    func append(_ key: WordKey, to out: inout [Int32]) -> Bool {
        storage.withLock { table in
            guard let ids = table[key] else { return false }
            out.append(contentsOf: ids)
            return true
        }
    }

    func insert(_ key: WordKey, _ ids: ArraySlice<Int32>) {
        storage.withLock { table in
            if table.count >= Self.capacity { table.removeAll(keepingCapacity: true) }
            table[key] = Array(ids)
        }
    }
}
