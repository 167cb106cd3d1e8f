import Foundation
import Kernels
import PropertyBased
import Testing
@testable import Tokenizer

/// Seeded hostile text for the tokenizer: random bytes (invalid UTF-8 made into strings),
/// control characters, emoji and ZWJ sequences, combining marks, special-token spellings and
/// fragments of them, and very long runs. `encode` must not crash, `decode(encode(s)) == s`
/// byte for byte, and the streaming decoder must give exactly `decode`'s text, a chunk at a
/// time, for any id sequence.
enum TokenizerFuzz {
    static let pieces: [String] = [
        "a", "Z", "hello", " world", "ab", "abab", "0", "12345", "٣", "½",
        " ", "  ", "\t", "\n", "\r\n", "\u{0B}", "\u{0C}", "\u{85}", "\u{A0}", "\u{2028}", "\u{3000}",
        "\u{0}", "\u{1}", "\u{1F}", "\u{7F}", "\u{9F}", "\u{FEFF}", "\u{FFFD}", "\u{FFFE}", "\u{10FFFF}", "\u{E000}",
        "é", "e\u{301}", "\u{301}", "ñ", "日本語", "한국어", "עברית", "العربية", "\u{202E}", "ß", "İ",
        "🙂", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "\u{200D}", "\u{FE0F}", "❤️", "🧑🏿‍🚀",
        "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<tool>", "<|im_", "|>", "<", "<|", "<tool",
        "'s", "'re", "'LL", "can't", "http://x.y/z?q=1", "{\"a\":[1,2]}", "```", "...", "—", "\\", "\"",
    ]

    /// A valid Swift string from a seed and what it was made of.
    static func text(seed: UInt64) -> (String, String) {
        var r = SplitMix64(seed: seed)
        switch r.next() % 4 {
        case 0:
            // Random bytes, mostly invalid UTF-8, decoded with replacement characters.
            let bytes = (0..<Int(r.next() % 200)).map { _ in UInt8(truncatingIfNeeded: r.next()) }
            return (String(decoding: bytes, as: UTF8.self), "random bytes")
        case 1:
            // Random scalars from the whole range (surrogates skipped).
            var s = String.UnicodeScalarView()
            for _ in 0..<Int(r.next() % 80) {
                let v = UInt32(r.next() % 0x11_0000)
                if let scalar = Unicode.Scalar(v) { s.append(scalar) }
            }
            return (String(s), "random scalars")
        case 2:
            // A very long run of one piece, or of alternating ones.
            let a = pieces[Int(r.next() % UInt64(pieces.count))], b = pieces[Int(r.next() % UInt64(pieces.count))]
            let n = Int(500 + r.next() % 8000)
            let alternate = r.next() % 2 == 0
            return ((0..<n).map { alternate && $0 % 2 == 1 ? b : a }.joined(), "run of \(n) × \(a.debugDescription)\(alternate ? "/\(b.debugDescription)" : "")")
        default:
            let n = Int(1 + r.next() % 40)
            return ((0..<n).map { _ in pieces[Int(r.next() % UInt64(pieces.count))] }.joined(), "\(n) pieces")
        }
    }

    /// Random ids, in and out of the vocabulary.
    static func ids(seed: UInt64, vocabulary: Int) -> [Int32] {
        var r = SplitMix64(seed: seed)
        return (0..<Int(r.next() % 64)).map { _ in
            switch r.next() % 8 {
            case 0: Int32(truncatingIfNeeded: r.next())
            case 1: Int32(vocabulary) + Int32(r.next() % 4)
            default: Int32(r.next() % UInt64(vocabulary))
            }
        }
    }

    /// What fails for `text` through `tokenizer`. A byte the vocabulary has no token for is
    /// dropped (as Hugging Face's BPE does without an unknown token), so the round trip gives
    /// the text without those bytes.
    static func problems(_ tokenizer: BPETokenizer, _ text: String) -> [String] {
        var found: [String] = []
        let known = (0..<256).map { tokenizer.id(of: ByteLevel.encode([UInt8($0)])) != nil }
        // Dropped bytes may leave a character broken, which decoding shows as U+FFFD.
        let kept = text.bytes.filter { known[Int($0)] }
        let whole = String(decoding: kept, as: UTF8.self)
        let expected = whole.bytes
        let ids = tokenizer.encode(text, addBOS: false)
        if ids.contains(where: { !(0..<Int32(tokenizer.vocabularySize)).contains($0) }) { found.append("id out of the vocabulary") }
        let decoded = tokenizer.decode(ids)
        if decoded.bytes != expected { found.append("decode(encode(s)) != s: \(decoded.debugDescription.prefix(120))") }
        // Without parsing specials, their spellings are ordinary text and still round-trip.
        if tokenizer.decode(tokenizer.encode(text, parseSpecial: false, addBOS: false)).bytes != expected {
            found.append("decode(encode(s, parseSpecial: false)) != s")
        }
        let streamed = stream(tokenizer, ids)
        if streamed.joined().bytes != expected { found.append("streamed text != s") }
        if whole.bytes == kept && !whole.unicodeScalars.contains("\u{FFFD}")
            && streamed.contains(where: { $0.unicodeScalars.contains("\u{FFFD}") }) {
            found.append("a streamed chunk broke a character")
        }
        return found
    }

    /// The chunks a streaming decoder gives for `ids`, then what `finish` flushes.
    static func stream(_ tokenizer: BPETokenizer, _ ids: [Int32]) -> [String] {
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        return ids.map { decoder.append($0) } + [decoder.finish()]
    }
}

@Suite("Fuzzed tokenizer input: no crash, exact round trips, whole characters when streaming")
struct TokenizerFuzzTests {
    static let cases = ProcessInfo.processInfo.environment["MEMSERVE_FUZZ_TOKENIZER_CASES"].flatMap(Int.init) ?? 600
    /// Seeds that once found a bug, run every time.
    static let regressionSeeds: [UInt64] = []

    static var tokenizers: [(String, BPETokenizer)] {
        PreTokenizer.allCases.map { ("tiny/\($0)", TinyVocabulary.tokenizer(preTokenizer: $0)) }
            + (FixtureModel.tokenizer.map { [("model", $0)] } ?? [])
    }

    static func check(seed: UInt64, _ tokenizers: [(String, BPETokenizer)]) {
        let (text, recipe) = TokenizerFuzz.text(seed: seed)
        for (name, tokenizer) in tokenizers {
            let problems = TokenizerFuzz.problems(tokenizer, text)
            #expect(problems.isEmpty, "seed \(seed) (\(recipe)), \(name): \(problems)")
            let ids = TokenizerFuzz.ids(seed: seed, vocabulary: tokenizer.vocabularySize)
            #expect(TokenizerFuzz.stream(tokenizer, ids).joined().bytes == tokenizer.decode(ids).bytes,
                    "seed \(seed), \(name): streaming \(ids) differs from decode")
        }
    }

    @Test("seeded texts and id sequences through every pre-tokenizer and the model's vocabulary")
    func seededInputs() async {
        let tokenizers = Self.tokenizers
        await propertyCheck(count: Self.cases, input: Generator(run: { rng in rng.next() })) { seed in
            Self.check(seed: seed, tokenizers)
        }
    }

    @Test("characters cut between tokens are held back, not broken")
    func splitCharacters() {
        let t = TinyVocabulary.tokenizer()
        for text in ["é", "日", "🙂", "👨‍👩‍👧", "a🇫🇷b"] {
            let ids = t.encode(text, addBOS: false)
            #expect(ids.count == text.utf8.count, "each byte its own token in the tiny vocabulary")
            let chunks = TokenizerFuzz.stream(t, ids)
            #expect(chunks.joined() == text)
            #expect(!chunks.contains { $0.unicodeScalars.contains("\u{FFFD}") })
        }
    }

    @Test("seeds that once found a bug", .enabled(if: !regressionSeeds.isEmpty))
    func regressions() {
        for seed in Self.regressionSeeds { Self.check(seed: seed, Self.tokenizers) }
    }
}
