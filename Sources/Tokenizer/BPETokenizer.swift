/// GGUF `tokenizer.ggml.token_type` values.
enum TokenType: UInt8, Sendable {
    case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6

    /// Unknown codes count as normal tokens rather than failing the load.
    init(gguf value: Int) {
        self = TokenType(rawValue: UInt8(truncatingIfNeeded: value)) ?? .normal
    }
}

/// BPE tokenizer, thread-safe and shareable: byte-level (GPT-2 family: SmolLM, Llama 3, Qwen2),
/// or SentencePiece-style with scores and byte fallback (`SentencePieceModel`: Gemma, Llama 2).
public final class BPETokenizer: Sendable {
    /// Beginning-of-sequence token, if the vocabulary has one.
    public let bosID: Int32?
    /// End-of-sequence token, if the vocabulary has one.
    public let eosID: Int32?
    /// Whether `encode` prepends `bosID` by default.
    public let addsBOS: Bool
    /// The pre-tokenizer words are cut with before BPE.
    public let preTokenizer: PreTokenizer
    /// Ids that end a generated turn: eos plus the end-of-turn tokens of common chat formats.
    public let endOfGenerationIDs: Set<Int32>

    private let tokens: [String]
    private let types: [TokenType]
    private let vocabulary: [String: Int32]
    private let merges: MergeTable
    /// Token id for each single byte; -1 where the vocabulary lacks it (bytes that never occur in UTF-8).
    private let byteTokens: [Int32]
    /// Decoded bytes of every token, concatenated; token `i` is `tokenByteStorage[offsets[i]..<offsets[i+1]]`.
    private let tokenByteStorage: [UInt8]
    private let tokenByteOffsets: [Int32]
    private let specials: SpecialTokenMatcher
    private let cache = WordCache()
    /// Set for SentencePiece vocabularies: encoding merges by score instead of by merge rules.
    private let sentencePiece: SentencePieceModel?

    /// Number of tokens in the vocabulary.
    public var vocabularySize: Int { tokens.count }

    /// Builds a tokenizer from GGUF-style arrays.
    /// - Parameters:
    ///   - tokens: Token strings in byte-level spelling (`Ġthe`), indexed by id.
    ///   - merges: Merge rules `"left right"`, highest priority first.
    ///   - tokenTypes: GGUF token types per id (1 normal, 3 control, 4 user-defined, 6 byte); empty means all normal.
    ///   - preTokenizer: How text is cut into words before merging.
    ///   - bosID: Beginning-of-sequence id, if any.
    ///   - eosID: End-of-sequence id, if any.
    ///   - addBOS: Whether `encode` prepends `bosID` by default.
    ///   - sentencePiece: For a SentencePiece vocabulary (tokens spelled with `▁`, `<0xNN>` byte
    ///     tokens, no merges): its scores.
    public init(tokens: [String], merges: [String], tokenTypes: [Int], preTokenizer: PreTokenizer,
                bosID: Int?, eosID: Int?, addBOS: Bool, sentencePiece: SentencePieceModel? = nil) throws(TokenizerError) {
        guard !tokens.isEmpty else { throw .emptyVocabulary }
        guard tokenTypes.isEmpty || tokenTypes.count == tokens.count else {
            throw .tokenTypeCountMismatch(tokens: tokens.count, types: tokenTypes.count)
        }
        for (name, id) in [("bos", bosID), ("eos", eosID)] {
            if let id, !tokens.indices.contains(id) { throw .specialTokenOutOfRange(name: name, id: id) }
        }
        self.tokens = tokens
        self.types = tokenTypes.isEmpty
            ? [TokenType](repeating: .normal, count: tokens.count)
            : tokenTypes.map(TokenType.init(gguf:))
        self.preTokenizer = preTokenizer
        self.bosID = bosID.map(Int32.init)
        self.eosID = eosID.map(Int32.init)
        self.addsBOS = addBOS
        if let sentencePiece, sentencePiece.scores.count != tokens.count {
            throw .tokenTypeCountMismatch(tokens: tokens.count, types: sentencePiece.scores.count)
        }
        self.sentencePiece = sentencePiece

        var vocabulary = [String: Int32](minimumCapacity: tokens.count)
        for (id, token) in tokens.enumerated() { vocabulary[token] = Int32(id) }
        self.vocabulary = vocabulary

        var table = MergeTable(capacity: merges.count)
        for (rank, rule) in merges.enumerated() {
            // Split at the first space after the first character, as llama.cpp does.
            guard let space = rule.dropFirst().firstIndex(of: " ") else {
                throw .malformedMerge(index: rank, rule: rule)
            }
            let left = String(rule[..<space]), right = String(rule[rule.index(after: space)...])
            // Rules naming tokens outside the vocabulary can never fire; llama.cpp tolerates them too.
            guard let l = vocabulary[left], let r = vocabulary[right], let m = vocabulary[left + right] else { continue }
            table.insert(left: l, right: r, rank: Int32(rank), merged: m)
        }
        self.merges = table

        self.byteTokens = sentencePiece == nil
            ? (0..<256).map { byte in vocabulary[ByteLevel.encode([UInt8(byte)])] ?? -1 }
            : (0..<256).map { byte in vocabulary["<0x" + Self.hex(UInt8(byte)) + ">"] ?? -1 }

        var storage: [UInt8] = []
        var offsets: [Int32] = [0]
        offsets.reserveCapacity(tokens.count + 1)
        for (id, token) in tokens.enumerated() {
            storage.append(contentsOf: Self.bytes(of: token, type: self.types[id], sentencePiece: sentencePiece != nil))
            offsets.append(Int32(storage.count))
        }
        self.tokenByteStorage = storage
        self.tokenByteOffsets = offsets
        self.specials = SpecialTokenMatcher(tokens: tokens, types: self.types)

        var endIDs = Set(self.eosID.map { [$0] } ?? [])
        for name in ["<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|eom_id|>", "<end_of_turn>"] {
            if let id = vocabulary[name] { endIDs.insert(id) }
        }
        self.endOfGenerationIDs = endIDs
    }

    /// Raw bytes a token stands for. Control and user-defined tokens are stored as plain text,
    /// `<0xNN>` byte tokens as the byte, everything else in byte-level spelling.
    /// SentencePiece tokens are UTF-8 text with `▁` for a space.
    private static func bytes(of token: String, type: TokenType, sentencePiece: Bool) -> [UInt8] {
        switch type {
        case .control, .userDefined:
            return Array(token.utf8)
        case .byte:
            if token.hasPrefix("<0x"), token.hasSuffix(">"), let byte = UInt8(token.dropFirst(3).dropLast(), radix: 16) {
                return [byte]
            }
            return sentencePiece ? Array(token.utf8) : ByteLevel.decode(token)
        default:
            return sentencePiece ? Array(token.replacing("\u{2581}", with: " ").utf8) : ByteLevel.decode(token)
        }
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }

    // MARK: Lookup

    /// Id of a token given in its vocabulary spelling (byte-level, e.g. `Ġthe`, or `<|im_end|>`).
    public func id(of token: String) -> Int32? { vocabulary[token] }

    /// The token's vocabulary spelling.
    public func token(_ id: Int32) -> String? {
        tokens.indices.contains(Int(id)) ? tokens[Int(id)] : nil
    }

    /// Raw bytes of a token (byte-level decoded); empty for out-of-range ids.
    public func tokenBytes(_ id: Int32) -> [UInt8] {
        guard tokens.indices.contains(Int(id)) else { return [] }
        return Array(tokenByteStorage[Int(tokenByteOffsets[Int(id)])..<Int(tokenByteOffsets[Int(id) + 1])])
    }

    /// Appends a token's bytes without allocating an intermediate array.
    func appendBytes(of id: Int32, to bytes: inout [UInt8]) {
        guard tokens.indices.contains(Int(id)) else { return }
        bytes.append(contentsOf: tokenByteStorage[Int(tokenByteOffsets[Int(id)])..<Int(tokenByteOffsets[Int(id) + 1])])
    }

    /// True for control tokens (`<|im_start|>`, `<|endoftext|>`), which `decode(skipSpecial:)` drops.
    /// User-defined tokens are ordinary text and not special.
    public func isSpecial(_ id: Int32) -> Bool {
        types.indices.contains(Int(id)) && types[Int(id)] == .control
    }

    // MARK: Encoding

    /// Token ids for `text`.
    /// - Parameters:
    ///   - parseSpecial: Recognize control tokens such as `<|im_start|>` written in the text;
    ///     when false they are tokenized as plain characters. User-defined tokens are always recognized.
    ///   - addBOS: Prepend `bosID`; nil uses the vocabulary's `addsBOS`.
    public func encode(_ text: String, parseSpecial: Bool = true, addBOS: Bool? = nil) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(text.utf8.count / 3 + 2)
        if addBOS ?? addsBOS, let bosID { out.append(bosID) }
        var text = text
        text.withUTF8 { utf8 in
            var scalars = ScalarText()
            var segmentStart = 0
            if !specials.isEmpty {
                var i = 0
                while i < utf8.count {
                    if let special = specials.match(utf8, at: i, parseSpecial: parseSpecial) {
                        encodeSegment(utf8, segmentStart..<i, &scalars, into: &out)
                        out.append(special.id)
                        i += special.length
                        segmentStart = i
                    } else {
                        i += 1
                    }
                }
            }
            encodeSegment(utf8, segmentStart..<utf8.count, &scalars, into: &out)
        }
        return out
    }

    /// Encodes text free of special tokens: pre-tokenize, then BPE per word.
    private func encodeSegment(_ utf8: UnsafeBufferPointer<UInt8>, _ range: Range<Int>,
                               _ scalars: inout ScalarText, into out: inout [Int32]) {
        guard !range.isEmpty else { return }
        if let sentencePiece {
            sentencePiece.encode(UnsafeBufferPointer(rebasing: utf8[range]), first: range.lowerBound == 0,
                                 lookup: { vocabulary[String(decoding: $0, as: UTF8.self)] }, byteTokens: byteTokens, into: &out)
            return
        }
        scalars.load(utf8, range)
        preTokenizer.split(scalars) { lo, hi in
            let word = UnsafeBufferPointer(rebasing: utf8[Int(scalars.offsets[lo])..<Int(scalars.offsets[hi])])
            encodeWord(word, into: &out)
        }
    }

    @inline(__always)
    private func encodeWord(_ word: UnsafeBufferPointer<UInt8>, into out: inout [Int32]) {
        if word.count == 1 {
            let id = byteTokens[Int(word[0])]
            if id >= 0 { out.append(id) }
            return
        }
        let key = WordKey(word)
        if let key, cache.append(key, to: &out) { return }
        let start = out.count
        if preTokenizer.ignoresMerges, let id = vocabulary[ByteLevel.encode(word)] {
            out.append(id)
        } else {
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: word.count) { symbols in
                var n = 0
                // Bytes missing from the vocabulary are dropped, as HF BPE does without an unk token.
                for byte in word where byteTokens[Int(byte)] >= 0 {
                    symbols[n] = byteTokens[Int(byte)]
                    n += 1
                }
                if n > 0 { merges.apply(UnsafeMutableBufferPointer(rebasing: symbols[0..<n]), into: &out) }
            }
        }
        if let key { cache.insert(key, out[start...]) }
    }

    // MARK: Decoding

    /// Text for `ids`; invalid UTF-8 (a multi-byte character cut between ids) becomes U+FFFD.
    /// - Parameter skipSpecial: Leave out control tokens such as `<|im_end|>`.
    public func decode(_ ids: [Int32], skipSpecial: Bool = false) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        for id in ids where !(skipSpecial && isSpecial(id)) {
            appendBytes(of: id, to: &bytes)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
