/// How text is cut into words before BPE. Each case is a hand-written scanner equivalent to the
/// regular expression llama.cpp and Hugging Face use for that model family.
public enum PreTokenizer: Sendable, Equatable, CaseIterable {
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    case gpt2
    /// SmolLM: every `\p{N}` scalar is its own word; GPT-2 rules apply between them.
    case smollm
    /// Llama 3: case-insensitive contractions, numbers in groups of up to three, newline-aware whitespace.
    case llama3
    /// Qwen2: as Llama 3, but every number scalar is its own word.
    case qwen2

    /// GGUF `tokenizer.ggml.pre` names accepted by `init(ggufName:)`.
    public static let supportedNames = ["default", "gpt2", "gpt-2", "smollm", "llama3", "llama-v3", "llama-bpe",
                                        "qwen2", "deepseek-r1-qwen"]

    /// Maps a GGUF `tokenizer.ggml.pre` value; a missing name or "default" means GPT-2.
    public init(ggufName: String?) throws(TokenizerError) {
        switch ggufName {
        case nil, "default", "gpt2", "gpt-2": self = .gpt2
        case "smollm": self = .smollm
        case "llama3", "llama-v3", "llama-bpe": self = .llama3
        case "qwen2", "deepseek-r1-qwen": self = .qwen2
        case let name?: throw .unknownPreTokenizer(name)
        }
    }

    /// Llama 3's vocabulary is used with `ignore_merges`: a word already in the vocabulary is one token.
    var ignoresMerges: Bool { self == .llama3 }

    /// The words `text` is cut into, for inspection and tests (encoding does not go through this).
    public func split(_ text: String) -> [String] {
        var text = text
        return text.withUTF8 { utf8 in
            var scalars = ScalarText()
            scalars.load(utf8, 0..<utf8.count)
            var words: [String] = []
            split(scalars) { lo, hi in
                let bytes = UnsafeBufferPointer(rebasing: utf8[Int(scalars.offsets[lo])..<Int(scalars.offsets[hi])])
                words.append(String(decoding: bytes, as: UTF8.self))
            }
            return words
        }
    }

    /// Calls `emit(lo, hi)` with scalar-index ranges covering `text` in order.
    @inline(__always)
    func split(_ text: borrowing ScalarText, _ emit: (Int, Int) -> Void) {
        let count = text.count
        switch self {
        case .gpt2:
            text.scanGPT2(0, count, emit)
        case .smollm:
            var start = 0
            for i in 0..<count where text.classes[i] == ScalarText.number {
                if start < i { text.scanGPT2(start, i, emit) }
                emit(i, i + 1)
                start = i + 1
            }
            if start < count { text.scanGPT2(start, count, emit) }
        case .llama3:
            text.scanLlama3(0, count, maxDigits: 3, emit)
        case .qwen2:
            text.scanLlama3(0, count, maxDigits: 1, emit)
        }
    }
}

/// Decoded scalars of a UTF-8 span with their regex character class and byte offsets,
/// so the scanners can look ahead freely and words map back to byte ranges.
struct ScalarText {
    static let letter: UInt8 = 0, number: UInt8 = 1, space: UInt8 = 2, other: UInt8 = 3

    private(set) var values: [UInt32] = []
    private(set) var classes: [UInt8] = []
    /// Byte offset of each scalar, plus one past the end.
    private(set) var offsets: [Int32] = []
    var count: Int { values.count }

    private static let asciiClasses: [UInt8] = (0..<128).map { byte in
        switch byte {
        case 0x41...0x5A, 0x61...0x7A: return letter
        case 0x30...0x39: return number
        case 0x09...0x0D, 0x20: return space
        default: return other
        }
    }

    /// `\p{L}`, `\p{N}` and `\s` as Oniguruma defines them for Unicode: general categories L* and N*,
    /// and the White_Space property.
    @inline(__always)
    static func classify(_ value: UInt32) -> UInt8 {
        if value < 128 { return asciiClasses[Int(value)] }
        let scalar = Unicode.Scalar(value)!
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return number
        default:
            return scalar.properties.isWhitespace ? space : other
        }
    }

    /// Replaces the contents with the scalars of `utf8[range]`, which must be valid UTF-8
    /// (as any Swift string is) and start on a scalar boundary. Offsets are relative to `utf8`.
    mutating func load(_ utf8: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) {
        values.removeAll(keepingCapacity: true)
        classes.removeAll(keepingCapacity: true)
        offsets.removeAll(keepingCapacity: true)
        values.reserveCapacity(range.count)
        classes.reserveCapacity(range.count)
        offsets.reserveCapacity(range.count + 1)
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let b0 = UInt32(utf8[i])
            var value: UInt32
            var length: Int
            if b0 < 0x80 {
                value = b0; length = 1
            } else if b0 < 0xE0 {
                value = (b0 & 0x1F) << 6 | UInt32(utf8[i + 1] & 0x3F); length = 2
            } else if b0 < 0xF0 {
                value = (b0 & 0x0F) << 12 | UInt32(utf8[i + 1] & 0x3F) << 6 | UInt32(utf8[i + 2] & 0x3F)
                length = 3
            } else {
                value = (b0 & 0x07) << 18 | UInt32(utf8[i + 1] & 0x3F) << 12
                    | UInt32(utf8[i + 2] & 0x3F) << 6 | UInt32(utf8[i + 3] & 0x3F)
                length = 4
            }
            values.append(value)
            classes.append(Self.classify(value))
            offsets.append(Int32(i))
            i += length
        }
        offsets.append(Int32(end))
    }

    @inline(__always)
    private func run(of cls: UInt8, from start: Int, to end: Int) -> Int {
        var i = start
        while i < end && classes[i] == cls { i += 1 }
        return i
    }

    @inline(__always)
    private func isNewline(_ i: Int) -> Bool { values[i] == 0x0A || values[i] == 0x0D }

    /// Length of a contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`) at `i`, which holds an apostrophe.
    @inline(__always)
    private func contraction(at i: Int, end: Int, ignoringCase: Bool) -> Int? {
        guard i + 1 < end else { return nil }
        func lower(_ k: Int) -> UInt32 {
            let v = values[k]
            return ignoringCase && v >= 0x41 && v <= 0x5A ? v | 0x20 : v
        }
        switch lower(i + 1) {
        case 0x73, 0x74, 0x6D, 0x64: return 2  // s t m d
        case 0x72, 0x76:  // r v → re ve
            return i + 2 < end && lower(i + 2) == 0x65 ? 3 : nil
        case 0x6C:  // l → ll
            return i + 2 < end && lower(i + 2) == 0x6C ? 3 : nil
        default: return nil
        }
    }

    /// End of a whitespace match at `i`: `\s+(?!\S)` gives the last scalar of a run back to the
    /// word after it, unless the run is a single scalar (then `\s+` takes it) or reaches the end.
    @inline(__always)
    private func whitespaceEnd(_ i: Int, _ end: Int) -> Int {
        let r = run(of: Self.space, from: i + 1, to: end)
        return r == end || r - i == 1 ? r : r - 1
    }

    /// GPT-2 regex over scalars `start..<end`, alternatives tried in the regex's order.
    func scanGPT2(_ start: Int, _ end: Int, _ emit: (Int, Int) -> Void) {
        var i = start
        while i < end {
            let cls = classes[i]
            let j: Int
            if values[i] == 0x27, let n = contraction(at: i, end: end, ignoringCase: false) {
                j = i + n
            } else if cls == Self.letter || cls == Self.number {
                j = run(of: cls, from: i + 1, to: end)
            } else if values[i] == 0x20 && i + 1 < end && classes[i + 1] != Self.space {
                j = run(of: classes[i + 1], from: i + 2, to: end)
            } else if cls == Self.other {
                j = run(of: cls, from: i + 1, to: end)
            } else {
                j = whitespaceEnd(i, end)
            }
            emit(i, j)
            i = j
        }
    }

    /// Llama 3 / Qwen2 regex:
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxDigits}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    func scanLlama3(_ start: Int, _ end: Int, maxDigits: Int, _ emit: (Int, Int) -> Void) {
        var i = start
        while i < end {
            let cls = classes[i]
            var j: Int
            if values[i] == 0x27, let n = contraction(at: i, end: end, ignoringCase: true) {
                j = i + n
            } else if cls == Self.letter {
                j = run(of: cls, from: i + 1, to: end)
            } else if cls != Self.number && !isNewline(i) && i + 1 < end && classes[i + 1] == Self.letter {
                j = run(of: Self.letter, from: i + 2, to: end)
            } else if cls == Self.number {
                j = i + 1
                while j < end && j - i < maxDigits && classes[j] == Self.number { j += 1 }
            } else if cls == Self.other || (values[i] == 0x20 && i + 1 < end && classes[i + 1] == Self.other) {
                j = run(of: Self.other, from: i + 1, to: end)
                while j < end && isNewline(j) { j += 1 }
            } else {
                let r = run(of: Self.space, from: i + 1, to: end)
                var lastNewline = r - 1
                while lastNewline >= i && !isNewline(lastNewline) { lastNewline -= 1 }
                j = lastNewline >= i ? lastNewline + 1 : whitespaceEnd(i, end)
            }
            emit(i, j)
            i = j
        }
    }
}
