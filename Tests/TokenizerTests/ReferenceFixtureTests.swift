import GGUF
import Testing
@testable import Tokenizer

/// The real SmolLM2 vocabulary against the Hugging Face `tokenizers` reference.
@Suite(.enabled(if: FixtureModel.available, "SmolLM2 GGUF not installed (scripts/setup.sh)"))
struct ReferenceFixtureTests {
    let fixture = TokenizerFixture.shared
    let tokenizer = FixtureModel.tokenizer!

    @Test func metadata() {
        #expect(tokenizer.vocabularySize == fixture.vocabularySize)
        #expect(tokenizer.preTokenizer == .smollm)
        #expect(tokenizer.bosID == 1)
        #expect(tokenizer.eosID == 2)
        #expect(!tokenizer.addsBOS)
        #expect(tokenizer.id(of: "<|im_start|>") == 1)
        #expect(tokenizer.id(of: "Ġthe") != nil)
        #expect(tokenizer.isSpecial(2))
        #expect(!tokenizer.isSpecial(tokenizer.id(of: "Ġthe")!))
        #expect(tokenizer.endOfGenerationIDs == [0, 2])
        #expect(tokenizer.tokenBytes(tokenizer.id(of: "Ġthe")!) == Array(" the".utf8))
    }

    @Test func encodeMatchesReference() {
        var mismatches = 0
        for entry in fixture.entries {
            let ids = tokenizer.encode(entry.text)
            if ids != entry.ids {
                mismatches += 1
                if mismatches <= 10 {
                    Issue.record("\(entry.text.debugDescription): got \(ids), expected \(entry.ids)")
                }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(fixture.entries.count) fixture strings differ")
    }

    @Test func encodeIsStableWithWarmCache() {
        // Second pass is served from the word cache; it must agree with the cold pass.
        for entry in fixture.entries.prefix(100) {
            #expect(tokenizer.encode(entry.text) == entry.ids)
        }
    }

    @Test func concurrentEncodingAgrees() async {
        // Callers share the word cache; parallel encoders must not see each other's partial state.
        let entries = fixture.entries, tokenizer = self.tokenizer
        let failures = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var bad = 0
                    for entry in entries.shuffled() where tokenizer.encode(entry.text) != entry.ids { bad += 1 }
                    return bad
                }
            }
            return await group.reduce(0, +)
        }
        #expect(failures == 0)
    }

    @Test func decodeRoundTrips() {
        for entry in fixture.entries {
            let expected = entry.decoded ?? entry.text
            #expect(tokenizer.decode(entry.ids).bytes == expected.bytes, "\(entry.text.debugDescription)")
        }
    }

    @Test func streamingMatchesDecode() {
        for entry in fixture.entries {
            var decoder = StreamingDecoder(tokenizer: tokenizer)
            var chunks = entry.ids.map { decoder.append($0) }
            chunks.append(decoder.finish())
            let full = tokenizer.decode(entry.ids)
            #expect(chunks.joined().bytes == full.bytes, "\(entry.text.debugDescription)")
            if !full.contains("\u{FFFD}") {
                #expect(!chunks.contains { $0.contains("\u{FFFD}") }, "broken character in \(entry.text.debugDescription)")
            }
        }
    }

    @Test func emojiSplitAcrossTokensStreamsWhole() {
        let text = "🧑🏿‍🚀!"
        let ids = tokenizer.encode(text)
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        var chunks = ids.map { decoder.append($0) }
        chunks.append(decoder.finish())
        #expect(chunks.joined() == text)
        // Some token ends mid-character, and it was held back rather than emitted broken.
        #expect(ids.contains { String(validating: tokenizer.tokenBytes($0), as: UTF8.self) == nil })
        for chunk in chunks { #expect(!chunk.contains("\u{FFFD}")) }
    }

    @Test func specialTokensOnlyWhenParsing() {
        let text = "<|im_start|>user\nhi<|im_end|>"
        let parsed = tokenizer.encode(text)
        #expect(parsed.first == 1 && parsed.last == 2)
        let plain = tokenizer.encode(text, parseSpecial: false)
        #expect(!plain.contains { tokenizer.isSpecial($0) })
        #expect(tokenizer.decode(plain) == text)
        #expect(tokenizer.decode(parsed, skipSpecial: true) == "user\nhi")
    }

    @Test func chatTemplateFromGGUF() throws {
        let template = ChatTemplate(gguf: FixtureModel.file!, tokenizer: tokenizer)
        #expect(template.defaultSystemMessage == "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        #expect(template.stopTokens == [2])
        for chat in fixture.chats {
            #expect(template.render(chat.messages, addGenerationPrompt: chat.addGenerationPrompt) == chat.rendered)
        }
        let prompt = template.render([.user("Hi!")])
        #expect(tokenizer.encode(prompt).filter { $0 == 1 }.count == 3)
    }
}

/// Pre-tokenizer scanners for models whose vocabularies are not installed, against the
/// reference regexes run by Hugging Face `tokenizers`.
@Suite struct PreTokenizerReferenceTests {
    @Test(arguments: [PreTokenizer.llama3, .qwen2])
    func splitsMatchReference(_ preTokenizer: PreTokenizer) {
        let name = preTokenizer == .llama3 ? "llama3" : "qwen2"
        let cases = TokenizerFixture.shared.splits.filter { $0.preTokenizer == name }
        #expect(cases.count > 300)
        for split in cases {
            let pieces = preTokenizer.split(split.text)
            #expect(pieces.map(\.bytes) == split.pieces.map(\.bytes), "\(split.text.debugDescription)")
        }
    }
}
