import Foundation
import GGUF
@testable import Tokenizer

/// `Fixtures/tokenizer_fixture.json`, written by `scripts/make_tokenizer_fixture.py`.
struct TokenizerFixture: Decodable {
    struct Entry: Decodable {
        let text: String
        let ids: [Int32]
        /// Present only when the reference decode differs from `text`.
        let decoded: String?
    }
    struct Split: Decodable {
        let preTokenizer: String
        let text: String
        let pieces: [String]
    }
    struct Chat: Decodable {
        let messages: [ChatMessage]
        let addGenerationPrompt: Bool
        let rendered: String
    }

    let tokenizersVersion: String
    let model: String
    let ggufPre: String?
    let vocabularySize: Int
    let chatTemplate: String?
    let entries: [Entry]
    let splits: [Split]
    let chats: [Chat]

    static let shared: TokenizerFixture = {
        let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        let data = try! Data(contentsOf: folder.appendingPathComponent("tokenizer_fixture.json"))
        return try! JSONDecoder().decode(TokenizerFixture.self, from: data)
    }()
}

/// The model the fixture was made from, if installed (`scripts/setup.sh`); MEMSERVE_MODEL is
/// used only when it is that same file, since the reference ids belong to one vocabulary.
enum FixtureModel {
    static let path: String? = {
        let name = TokenizerFixture.shared.model
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["MEMSERVE_MODEL"] { candidates.append(env) }
        if let packaged = DefaultModel.packagedFile() { candidates.append(packaged) }
        return candidates.first { ($0 as NSString).lastPathComponent == name && FileManager.default.fileExists(atPath: $0) }
    }()

    static var available: Bool { path != nil }

    static let file: GGUFFile? = path.map { try! GGUFFile(path: $0) }
    static let tokenizer: BPETokenizer? = file.map { try! BPETokenizer(gguf: $0) }
}

/// A hand-made vocabulary: all 256 byte tokens, a few merges and special tokens.
enum TinyVocabulary {
    static let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    static let userDefined = "<tool>"
    static let mergeRules = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "Ġwor l", "Ġworl d",
                             "a b", "ab ab", "abab abab", "a a"]

    /// Specials first (ids 0-2), then the user-defined token (3), bytes (4-259), then merge results.
    static let tokens: [String] = {
        var tokens = specials + [userDefined]
        tokens += (0..<256).map { ByteLevel.encode([UInt8($0)]) }
        for rule in mergeRules { tokens.append(rule.replacingOccurrences(of: " ", with: "")) }
        return tokens
    }()

    static let types: [Int] = tokens.indices.map { $0 < specials.count ? 3 : $0 == specials.count ? 4 : 1 }

    static func tokenizer(preTokenizer: PreTokenizer = .gpt2, addBOS: Bool = false) -> BPETokenizer {
        try! BPETokenizer(tokens: tokens, merges: mergeRules, tokenTypes: types, preTokenizer: preTokenizer,
                          bosID: 1, eosID: 2, addBOS: addBOS)
    }

    static func id(_ token: String) -> Int32 { Int32(tokens.firstIndex(of: token)!) }
    static func byte(_ value: UInt8) -> Int32 { Int32(specials.count + 1) + Int32(value) }
}

extension String {
    /// Code units, for comparisons that must not treat NFC and NFD spellings as equal.
    var bytes: [UInt8] { Array(utf8) }
}
