import Foundation
import Testing
@testable import Tokenizer

/// ChatML rendering against jinja2's rendering of the SmolLM2 template (from the fixture).
@Suite struct ChatTemplateTests {
    let tokenizer = TinyVocabulary.tokenizer()
    let smolTemplate = TokenizerFixture.shared.chatTemplate!
    static let smolSystem = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

    @Test func extractsDefaultSystemMessage() throws {
        let template = ChatTemplate(gguf: smolTemplate, tokenizer: tokenizer)
        #expect(template.format == .chatML)
        #expect(template.defaultSystemMessage == Self.smolSystem)
        #expect(template.stopTokens == [2])
    }

    @Test func matchesJinjaRendering() throws {
        let template = ChatTemplate(gguf: smolTemplate, tokenizer: tokenizer)
        let chats = TokenizerFixture.shared.chats
        #expect(chats.count >= 12)
        for chat in chats {
            #expect(template.render(chat.messages, addGenerationPrompt: chat.addGenerationPrompt) == chat.rendered)
        }
    }

    @Test func explicitTurns() throws {
        let template = ChatTemplate(gguf: smolTemplate, tokenizer: tokenizer)
        let sys = "<|im_start|>system\n\(Self.smolSystem)<|im_end|>\n"
        #expect(template.render([.user("Hi")]) == sys + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        #expect(template.render([.system("S"), .user("Hi")], addGenerationPrompt: false)
            == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")
        #expect(template.render([.user("Q"), .assistant("A"), .user("Q2")])
            == sys + "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
            + "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n")
        #expect(template.render([.system("S"), .user("Q"), .assistant("A")])
            == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
            + "<|im_start|>assistant\n")
        #expect(template.render([]) == "<|im_start|>assistant\n")
    }

    @Test func nilTemplateIsPlainChatML() throws {
        let template = ChatTemplate(gguf: nil, tokenizer: tokenizer)
        #expect(template.defaultSystemMessage == nil)
        #expect(template.render([.user("Hi")]) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    }

    @Test func escapedQwenStyleDefault() throws {
        let qwen = """
        {%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\
        {%- else %}{{- '<|im_start|>system\\nYou are Qwen, it\\'s Alibaba\\'s model.<|im_end|>\\n' }}{%- endif %}
        """
        let template = ChatTemplate(gguf: qwen, tokenizer: tokenizer)
        #expect(template.defaultSystemMessage == "You are Qwen, it's Alibaba's model.")
    }

    @Test func noDefaultWhenSystemComesFromMessages() throws {
        let plain = "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n'}}{% endfor %}"
        #expect(ChatTemplate(gguf: plain, tokenizer: tokenizer).defaultSystemMessage == nil)
    }

    @Test func unknownTemplateFallsBackToChatML() {
        let odd = "{% for message in messages %}### {{ message['role'] }}: {{ message['content'] }}{% endfor %}"
        let template = ChatTemplate(gguf: odd, tokenizer: tokenizer)
        #expect(template.format == .chatML)
        #expect(template.unavailableReason == nil)
        #expect(template.fallbackNotice?.contains("### {{ message[") == true)
        #expect(template.render([.user("Hi")]) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        #expect(ChatTemplate(gguf: nil, tokenizer: tokenizer).fallbackNotice?.contains("no chat template") == true)
        #expect(ChatTemplate(gguf: smolTemplate, tokenizer: tokenizer).fallbackNotice == nil)
    }

    @Test func missingDelimitersMakeChatUnavailable() throws {
        let bare = try BPETokenizer(tokens: ["a"], merges: [], tokenTypes: [], preTokenizer: .gpt2,
                                    bosID: nil, eosID: nil, addBOS: false)
        let template = ChatTemplate(gguf: nil, tokenizer: bare)
        #expect(template.unavailableReason?.contains("<|im_start|>") == true)
        // A Llama 3 template over a vocabulary without its header tokens.
        let llama3 = ChatTemplate(gguf: ChatTemplateSamples.llama3, tokenizer: tokenizer)
        #expect(llama3.format == .llama3)
        #expect(llama3.unavailableReason?.contains("<|start_header_id|>") == true)
    }

    @Test func messagesAreCodable() throws {
        let message = ChatMessage.user("hi")
        #expect(message == ChatMessage(role: "user", content: "hi"))
        let data = try JSONEncoder().encode([message, .assistant("yo")])
        #expect(try JSONDecoder().decode([ChatMessage].self, from: data) == [message, .assistant("yo")])
    }
}
