import Testing
@testable import Tokenizer

/// Hand-checked pre-tokenizer cases for the regex corners, and the streaming decoder's
/// character-boundary logic.
@Suite struct TextSplittingTests {
    @Test(arguments: [
        ("Hello world", ["Hello", " world"]),
        ("a   b", ["a", "  ", " b"]),
        ("a \nb", ["a", " ", "\n", "b"]),
        ("  \tb", ["  ", "\t", "b"]),
        ("trail  ", ["trail", "  "]),
        ("it's IT'S", ["it", "'s", " IT", "'", "S"]),
        ("''s", ["''", "s"]),
        (" 's", [" '", "s"]),
        ("x 12", ["x", " 12"]),
        ("(a)!?", ["(", "a", ")!?"]),
        ("e\u{301}", ["e", "\u{301}"]),
        ("a\u{3000}b", ["a", "\u{3000}", "b"]),
    ])
    func gpt2(_ text: String, _ expected: [String]) {
        #expect(PreTokenizer.gpt2.split(text).map(\.bytes) == expected.map(\.bytes))
    }

    @Test(arguments: [
        ("x   1", ["x", "   ", "1"]),
        ("a 1 b", ["a", " ", "1", " b"]),
        ("v1.23", ["v", "1", ".", "2", "3"]),
        ("Ⅻ½", ["Ⅻ", "½"]),
        ("2024-06", ["2", "0", "2", "4", "-", "0", "6"]),
    ])
    func smollm(_ text: String, _ expected: [String]) {
        #expect(PreTokenizer.smollm.split(text) == expected)
    }

    @Test func llama3GroupsDigitsAndNewlines() {
        #expect(PreTokenizer.llama3.split("12345 (ok)\n\n  x") == ["123", "45", " (", "ok", ")\n\n", " ", " x"])
        #expect(PreTokenizer.qwen2.split("12 I'M") == ["1", "2", " I", "'M"])
    }

    @Test func emptyText() {
        for preTokenizer in PreTokenizer.allCases { #expect(preTokenizer.split("").isEmpty) }
    }

    @Test func completePrefixLength() {
        let emoji = Array("😀".utf8)
        for cut in 0..<4 {
            let bytes = Array("ab".utf8) + emoji.prefix(cut)
            #expect(StreamingDecoder.completePrefixLength(bytes) == 2)
        }
        #expect(StreamingDecoder.completePrefixLength(Array("ab😀".utf8)) == 6)
        #expect(StreamingDecoder.completePrefixLength([0xC3]) == 0)
        // Stray continuation bytes and invalid leads are released for U+FFFD at once.
        #expect(StreamingDecoder.completePrefixLength([0x80, 0x80, 0x80, 0x80, 0x80]) == 5)
        #expect(StreamingDecoder.completePrefixLength([0x41, 0xFF]) == 2)
    }

    @Test func streamingHoldsSplitEmoji() {
        let tokenizer = TinyVocabulary.tokenizer()
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        // No merges apply, so "😀" arrives as four byte tokens.
        let ids = tokenizer.encode("a😀b")
        #expect(ids.count == 6)
        let chunks = ids.map { decoder.append($0) }
        #expect(chunks == ["a", "", "", "", "😀", "b"])
        #expect(decoder.finish() == "")
    }

    @Test func streamingFinishFlushesIncomplete() {
        let tokenizer = TinyVocabulary.tokenizer()
        var decoder = StreamingDecoder(tokenizer: tokenizer, skipSpecial: true)
        #expect(decoder.append(1) == "")
        #expect(decoder.append(TinyVocabulary.byte(0xF0)) == "")
        #expect(decoder.finish() == "\u{FFFD}")
        #expect(decoder.append(TinyVocabulary.id("hello")) == "hello")
    }
}
