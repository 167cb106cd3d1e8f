import GGUF
import Testing
@testable import Tokenizer

/// Behaviour on a hand-made vocabulary; needs no model file.
@Suite struct SyntheticTokenizerTests {
    let tokenizer = TinyVocabulary.tokenizer()
    typealias V = TinyVocabulary

    @Test func mergesFollowRanks() {
        #expect(tokenizer.encode("hello world") == [V.id("hello"), V.id("Ġworld")])
        // "hel" has no rule to finish, so it stays as "he" + "l".
        #expect(tokenizer.encode("hel") == [V.id("he"), V.byte(UInt8(ascii: "l"))])
        #expect(tokenizer.decode(tokenizer.encode("hello world")) == "hello world")
    }

    @Test func equalRanksMergeLeftmostFirst() {
        #expect(tokenizer.encode("aaa") == [V.id("aa"), V.byte(UInt8(ascii: "a"))])
        // Short word (linear merge loop).
        #expect(tokenizer.encode(String(repeating: "ab", count: 5)) == [V.id("abababab"), V.id("ab")])
    }

    @Test func longWordsUseSameRules() {
        // 82 symbols: the heap merge loop; its pairing must match the linear one.
        let ids = tokenizer.encode(String(repeating: "ab", count: 41))
        #expect(ids == Array(repeating: V.id("abababab"), count: 10) + [V.id("ab")])
        let odd = tokenizer.encode(String(repeating: "a", count: 51))
        #expect(odd == Array(repeating: V.id("aa"), count: 25) + [V.byte(UInt8(ascii: "a"))])
    }

    @Test func unmergedBytesAndUnicode() {
        let text = "😀"
        #expect(tokenizer.encode(text) == text.utf8.map { V.byte($0) })
        #expect(tokenizer.tokenBytes(V.id("Ġworld")) == Array(" world".utf8))
        #expect(tokenizer.decode([V.byte(0xF0), V.byte(0x9F)]) == "\u{FFFD}")
    }

    @Test func canonicallyEquivalentWordsStayDistinct() {
        // One word each, equal as Swift Strings (U+212B is canonically U+00C5); the word cache must
        // still tell them apart.
        let ring = "x\u{C5}", angstrom = "x\u{212B}"
        #expect(ring == angstrom)
        let first = tokenizer.encode(ring), second = tokenizer.encode(angstrom)
        #expect(first != second)
        #expect(tokenizer.decode(second).bytes == angstrom.bytes)
        #expect(tokenizer.encode(ring) == first)
    }

    @Test func specialTokens() {
        let text = "<|im_start|>hello<|im_end|>"
        #expect(tokenizer.encode(text) == [1, V.id("hello"), 2])
        let plain = tokenizer.encode(text, parseSpecial: false)
        #expect(!plain.contains(1) && !plain.contains(2))
        #expect(tokenizer.decode(plain) == text)
        #expect(tokenizer.decode([1, V.id("hello"), 2], skipSpecial: true) == "hello")
        #expect(tokenizer.isSpecial(1) && !tokenizer.isSpecial(V.id("hello")))
        // Leftmost-longest; a prefix that is not a whole token is plain text.
        #expect(tokenizer.encode("<|im_start|<|im_end|>").last == 2)
    }

    @Test func userDefinedTokensAlwaysMatchAndAreText() {
        let tool = V.id("<tool>")
        #expect(tokenizer.encode("a<tool>", parseSpecial: false) == [V.byte(UInt8(ascii: "a")), tool])
        #expect(!tokenizer.isSpecial(tool))
        #expect(tokenizer.decode([tool], skipSpecial: true) == "<tool>")
    }

    @Test func bosAndEndOfGeneration() {
        let withBOS = TinyVocabulary.tokenizer(addBOS: true)
        #expect(withBOS.encode("hello") == [1, V.id("hello")])
        #expect(withBOS.encode("hello", addBOS: false) == [V.id("hello")])
        #expect(tokenizer.encode("hello", addBOS: true) == [1, V.id("hello")])
        #expect(tokenizer.endOfGenerationIDs == [0, 2])
        #expect(tokenizer.encode("").isEmpty)
    }

    @Test func lookups() {
        #expect(tokenizer.id(of: "Ġworld") == V.id("Ġworld"))
        #expect(tokenizer.id(of: "nope") == nil)
        #expect(tokenizer.token(V.id("hello")) == "hello")
        #expect(tokenizer.tokenBytes(-1).isEmpty && tokenizer.tokenBytes(100_000).isEmpty)
        #expect(tokenizer.vocabularySize == V.tokens.count)
    }

    @Test func llama3UsesWholeWordsFromVocabulary() throws {
        // "xyz" is a token no merge produces: Llama 3 (ignore_merges) takes it whole, GPT-2 spells it out.
        let tokens = (0..<256).map { ByteLevel.encode([UInt8($0)]) } + ["xyz", "Ġxyz"]
        func make(_ pre: PreTokenizer) throws -> BPETokenizer {
            try BPETokenizer(tokens: tokens, merges: [], tokenTypes: [], preTokenizer: pre, bosID: nil, eosID: nil, addBOS: false)
        }
        #expect(try make(.llama3).encode("xyz xyz") == [256, 257])
        #expect(try make(.gpt2).encode("xyz") == Array("xyz".utf8).map { Int32(tokens.firstIndex(of: ByteLevel.encode([$0]))!) })
    }

    @Test func invalidInputsThrow() {
        #expect(throws: TokenizerError.emptyVocabulary) {
            try BPETokenizer(tokens: [], merges: [], tokenTypes: [], preTokenizer: .gpt2, bosID: nil, eosID: nil, addBOS: false)
        }
        #expect(throws: TokenizerError.tokenTypeCountMismatch(tokens: 2, types: 1)) {
            try BPETokenizer(tokens: ["a", "b"], merges: [], tokenTypes: [1], preTokenizer: .gpt2, bosID: nil, eosID: nil, addBOS: false)
        }
        #expect(throws: TokenizerError.malformedMerge(index: 0, rule: "ab")) {
            try BPETokenizer(tokens: ["a", "b"], merges: ["ab"], tokenTypes: [], preTokenizer: .gpt2, bosID: nil, eosID: nil, addBOS: false)
        }
        #expect(throws: TokenizerError.specialTokenOutOfRange(name: "eos", id: 5)) {
            try BPETokenizer(tokens: ["a"], merges: [], tokenTypes: [], preTokenizer: .gpt2, bosID: 0, eosID: 5, addBOS: false)
        }
        #expect(throws: TokenizerError.unknownPreTokenizer("falcon")) { try PreTokenizer(ggufName: "falcon") }
        #expect(TokenizerError.unknownPreTokenizer("falcon").description.contains("falcon"))
    }

    @Test func preTokenizerNames() throws {
        #expect(try PreTokenizer(ggufName: nil) == .gpt2)
        #expect(try PreTokenizer(ggufName: "default") == .gpt2)
        #expect(try PreTokenizer(ggufName: "smollm") == .smollm)
        #expect(try PreTokenizer(ggufName: "llama-bpe") == .llama3)
        #expect(try PreTokenizer(ggufName: "qwen2") == .qwen2)
    }
}

/// `BPETokenizer(gguf:)` on files written in memory with `GGUFWriter`.
@Suite struct GGUFTokenizerTests {
    func file(model: String = "gpt2", pre: String? = "smollm", dropMerges: Bool = false) throws -> GGUFFile {
        var writer = GGUFWriter()
        writer.set("general.architecture", .string("llama"))
        writer.set("tokenizer.ggml.model", .string(model))
        if let pre { writer.set("tokenizer.ggml.pre", .string(pre)) }
        writer.set("tokenizer.ggml.tokens", .array(TinyVocabulary.tokens.map { .string($0) }))
        if !dropMerges { writer.set("tokenizer.ggml.merges", .array(TinyVocabulary.mergeRules.map { .string($0) })) }
        writer.set("tokenizer.ggml.token_type", .array(TinyVocabulary.types.map { .int32(Int32($0)) }))
        writer.set("tokenizer.ggml.bos_token_id", .uint32(1))
        writer.set("tokenizer.ggml.eos_token_id", .uint32(2))
        writer.set("tokenizer.ggml.add_bos_token", .bool(false))
        return try GGUFFile(bytes: writer.bytes())
    }

    @Test func readsMetadata() throws {
        let tokenizer = try BPETokenizer(gguf: try file())
        #expect(tokenizer.preTokenizer == .smollm)
        #expect(tokenizer.bosID == 1 && tokenizer.eosID == 2 && !tokenizer.addsBOS)
        let reference = TinyVocabulary.tokenizer(preTokenizer: .smollm)
        for text in ["hello world", "<|im_start|>hello 123<|im_end|>", "ab ab abab"] {
            #expect(tokenizer.encode(text) == reference.encode(text))
        }
    }

    @Test func missingPreMeansGPT2() throws {
        #expect(try BPETokenizer(gguf: try file(pre: nil)).preTokenizer == .gpt2)
    }

    @Test func rejectsUnsupported() throws {
        #expect(throws: TokenizerError.unsupportedModel("bert")) { try BPETokenizer(gguf: try file(model: "bert")) }
        // A SentencePiece vocabulary needs its scores.
        #expect(throws: TokenizerError.missingMetadata("tokenizer.ggml.scores")) { try BPETokenizer(gguf: try file(model: "llama")) }
        #expect(throws: TokenizerError.unknownPreTokenizer("mystery")) { try BPETokenizer(gguf: try file(pre: "mystery")) }
        #expect(throws: TokenizerError.missingMetadata("tokenizer.ggml.merges")) {
            try BPETokenizer(gguf: try file(dropMerges: true))
        }
    }
}
