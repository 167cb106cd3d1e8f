/// Finds special tokens written literally in text (`<|im_start|>`), leftmost-longest like
/// Hugging Face's added-token splitter. Patterns are bucketed by first byte so ordinary
/// text costs one table load per byte.
struct SpecialTokenMatcher: Sendable {
    private struct Pattern: Sendable {
        var bytes: [UInt8]
        var id: Int32
        /// Control tokens are matched only when the caller asks to parse special tokens;
        /// user-defined ones always are (llama.cpp and HF agree on this).
        var needsParseSpecial: Bool
    }

    /// Pattern indices per first byte, longest pattern first.
    private let buckets: [[Int]]
    private let patterns: [Pattern]

    var isEmpty: Bool { patterns.isEmpty }

    init(tokens: [String], types: [TokenType]) {
        var patterns: [Pattern] = []
        for (id, token) in tokens.enumerated() where !token.isEmpty {
            switch types[id] {
            case .control: patterns.append(Pattern(bytes: Array(token.utf8), id: Int32(id), needsParseSpecial: true))
            case .userDefined: patterns.append(Pattern(bytes: Array(token.utf8), id: Int32(id), needsParseSpecial: false))
            default: break
            }
        }
        var buckets = [[Int]](repeating: [], count: 256)
        for (index, pattern) in patterns.enumerated() { buckets[Int(pattern.bytes[0])].append(index) }
        for byte in 0..<256 {
            buckets[byte].sort { patterns[$0].bytes.count > patterns[$1].bytes.count }
        }
        self.buckets = buckets
        self.patterns = patterns
    }

    /// The special token starting at `offset`, if any, as (byte length, id).
    @inline(__always)
    func match(_ text: UnsafeBufferPointer<UInt8>, at offset: Int, parseSpecial: Bool) -> (length: Int, id: Int32)? {
        let bucket = buckets[Int(text[offset])]
        if bucket.isEmpty { return nil }
        let remaining = text.count - offset
        for index in bucket {
            let pattern = patterns[index]
            if pattern.needsParseSpecial && !parseSpecial { continue }
            let length = pattern.bytes.count
            guard length <= remaining else { continue }
            let matches = pattern.bytes.withUnsafeBufferPointer { p in
                var k = 1
                while k < length && p[k] == text[offset + k] { k += 1 }
                return k == length
            }
            if matches { return (length, pattern.id) }
        }
        return nil
    }
}
