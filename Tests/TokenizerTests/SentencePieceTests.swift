import Foundation
import GGUF
import Testing
@testable import Tokenizer

/// SentencePiece-style BPE (GGUF `tokenizer.ggml.model` "llama"): merges by score, `▁` for
/// spaces, byte fallback; and the real Gemma 3 vocabulary when it is installed.
@Suite struct SentencePieceTests {
    /// `<unk>`, `<s>`, `</s>`, 256 byte tokens, then pieces with their scores.
    static let pieces: [(String, Float)] = [("▁", -3), ("h", -4), ("e", -4), ("l", -4), ("o", -4),
                                            ("he", -1), ("ll", -2), ("lo", -3), ("hell", -1.5), ("hello", -0.5), ("▁hello", -0.1)]
    static func tokenizer(addSpacePrefix: Bool = false) throws -> BPETokenizer {
        let bytes = (0..<256).map { String(format: "<0x%02X>", $0) }
        let tokens = ["<unk>", "<s>", "</s>"] + bytes + pieces.map(\.0)
        let types = [2, 3, 3] + [Int](repeating: 6, count: 256) + [Int](repeating: 1, count: pieces.count)
        let scores = [Float](repeating: 0, count: 3 + 256) + pieces.map(\.1)
        return try BPETokenizer(tokens: tokens, merges: [], tokenTypes: types, preTokenizer: .gpt2, bosID: 1, eosID: 2,
                                addBOS: true, sentencePiece: SentencePieceModel(scores: scores, addSpacePrefix: addSpacePrefix))
    }

    @Test func mergesByScoreWithByteFallback() throws {
        let t = try Self.tokenizer()
        func id(_ s: String) -> Int32 { t.id(of: s)! }
        // he (-1) first, then ll (-2), then hell (-1.5), then hello: lo (-3) goes stale.
        #expect(t.encode("hello") == [1, id("hello")])
        // ▁h is no token, but once hello is whole, ▁ + hello is.
        #expect(t.encode(" hello", addBOS: false) == [id("▁hello")])
        #expect(t.encode(" hell", addBOS: false) == [id("▁"), id("hell")])
        #expect(t.encode("hellé", addBOS: false) == [id("hell"), id("<0xC3>"), id("<0xA9>")])
        #expect(t.decode(t.encode("hellé hello"), skipSpecial: true) == "hellé hello")
        #expect(t.decode([id("▁"), id("hello")]) == " hello")
        #expect(try Self.tokenizer(addSpacePrefix: true).encode("hello", addBOS: false) == [id("▁hello")])
        #expect(t.encode("", addBOS: false).isEmpty)
    }

    static let gemma: BPETokenizer? = GemmaModel.locate().flatMap { try? GGUFFile(path: $0) }.flatMap { try? BPETokenizer(gguf: $0) }

    @Test(.enabled(if: GemmaModel.locate() != nil)) func realGemmaVocabulary() throws {
        let t = try #require(Self.gemma)
        #expect(t.bosID == 2 && t.addsBOS)
        // The pieces of the numpy reference's prompt (scripts/reference_gemma3.py).
        #expect(t.encode("The capital of France is") == [2, 818, 5279, 529, 7001, 563])
        #expect(t.encode("Once upon a time, there was") == [2, 14946, 3324, 496, 990, 236764, 993, 691])
        #expect(t.decode([506, 5279, 529, 506, 2891, 529, 7001, 236761]) == " the capital of the country of France.")
        let chat = t.encode("<start_of_turn>user\nHi<end_of_turn>\n", addBOS: false)
        #expect(chat.first == t.id(of: "<start_of_turn>") && chat.contains(t.id(of: "<end_of_turn>")!))
        for text in ["naïve café, 東京 🚀\ttabs\n\nnew  lines", "  leading and trailing  ", "x\u{0}y", "1234567890"] {
            #expect(t.decode(t.encode(text, addBOS: false)) == text)
        }
    }
}
