/// Incremental detokenizer for streaming output: feed ids one at a time and get the text that is
/// complete so far. A multi-byte character split across tokens is held back until its last byte
/// arrives, so no chunk ever ends in a broken character; `finish()` flushes what is left.
public struct StreamingDecoder: Sendable {
    private let tokenizer: BPETokenizer
    private let skipSpecial: Bool
    private var pending: [UInt8] = []

    /// - Parameter skipSpecial: Leave out control tokens such as `<|im_end|>`.
    public init(tokenizer: BPETokenizer, skipSpecial: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecial = skipSpecial
    }

    /// A decoder continuing elsewhere with the bytes of an unfinished character.
    public init(tokenizer: BPETokenizer, skipSpecial: Bool = false, pending: [UInt8]) {
        self.init(tokenizer: tokenizer, skipSpecial: skipSpecial)
        self.pending = pending
    }

    /// Bytes of a character not complete yet.
    public var pendingBytes: [UInt8] { pending }

    /// Adds one token; returns the newly completed text (possibly empty).
    public mutating func append(_ id: Int32) -> String {
        if skipSpecial && tokenizer.isSpecial(id) { return "" }
        tokenizer.appendBytes(of: id, to: &pending)
        let complete = Self.completePrefixLength(pending)
        guard complete > 0 else { return "" }
        let text = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Returns whatever is still held back (an unfinished character becomes U+FFFD) and resets.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix that does not end inside a character that could still be
    /// completed. Invalid bytes are released at once; the decoder will show them as U+FFFD.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        let count = bytes.count
        var lead = count - 1
        while lead >= 0 && count - lead <= 4 && bytes[lead] & 0xC0 == 0x80 { lead -= 1 }
        guard lead >= 0 && count - lead <= 4 else { return count }
        let needed: Int
        switch bytes[lead] {
        case 0xC2...0xDF: needed = 2
        case 0xE0...0xEF: needed = 3
        case 0xF0...0xF4: needed = 4
        default: return count
        }
        return count - lead < needed ? lead : count
    }
}
