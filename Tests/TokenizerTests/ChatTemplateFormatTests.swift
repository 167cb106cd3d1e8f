import Testing
@testable import Tokenizer

/// The chat templates' sources as GGUF files carry them (trimmed to what detection reads:
/// Jinja string escapes stay as written, `\\n` is a backslash and an n).
enum ChatTemplateSamples {
    static let llama3 = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
        + "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}"
        + "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
        + "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
    static let llama31 = "{{- bos_token }}\n{%- if not date_string is defined %}\n    {%- set date_string = \"26 Jul 2024\" %}\n"
        + "{%- endif %}\n{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
        + "{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n"
        + "{{- system_message }}\n{{- \"<|eot_id|>\" }}\n{%- for message in messages %}{{- '<|start_header_id|>' + "
        + "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
    static let gemma3 = "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = "
        + "messages[0]['content'] + '\\n\\n' -%}{%- set loop_messages = messages[1:] -%}{%- endif -%}"
        + "{%- for message in loop_messages -%}{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}"
        + "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}{{ '<start_of_turn>' + role + '\\n' + "
        + "(first_user_prefix if loop.first else \"\") }}{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}{%- endfor -%}"
        + "{%- if add_generation_prompt -%}{{'<start_of_turn>model\\n'}}{%- endif -%}"
    static let mistralV7 = "{{- bos_token }}{%- for message in loop_messages %}{%- if message['role'] == 'user' %}"
        + "{{- '[INST] ' + message['content'] + '[/INST]' }}{%- elif message['role'] == 'system' %}"
        + "{{- '[SYSTEM_PROMPT] ' + message['content'] + '[/SYSTEM_PROMPT]' }}{%- elif message['role'] == 'assistant' %}"
        + "{{- ' ' + message['content'] + eos_token }}{%- endif %}{%- endfor %}"
    static let mistralV3 = "{{- bos_token }}{%- for message in loop_messages %}{%- if message[\"role\"] == \"user\" %}"
        + "{%- if tools is not none and (message == user_messages[-1]) %}{{- \"[AVAILABLE_TOOLS] [\" }}{%- endif %}"
        + "{{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}{%- elif message[\"role\"] == \"assistant\" %}"
        + "{{- \" \" + message[\"content\"]|trim + eos_token}}{%- endif %}{%- endfor %}"
    static let mistralV3Tekken = "{{- bos_token }}{%- for message in loop_messages %}{%- if message[\"role\"] == \"user\" %}"
        + "{%- if tools is not none %}{{- \"[AVAILABLE_TOOLS]\" }}{%- endif %}{{- \"[INST]\" + message[\"content\"] + \"[/INST]\" }}"
        + "{%- elif message[\"role\"] == \"assistant\" %}{{- message[\"content\"] + eos_token}}{%- endif %}{%- endfor %}"
    static let mistralV1 = "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
        + "{% if loop.first and system_message is defined %}{{ ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}"
        + "{% else %}{{ ' [INST] ' + message['content'] + ' [/INST]' }}{% endif %}{% elif message['role'] == 'assistant' %}"
        + "{{ ' ' + message['content'] + eos_token}}{% endif %}{% endfor %}"
    static let mistralInstruct = "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
        + "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
        + "{{ message['content'] + eos_token}}{% endif %}{% endfor %}"
    static let llama2 = "{% if messages[0]['role'] == 'system' %}{% set system_message = messages[0]['content'] %}{% endif %}"
        + "{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}{% set content = "
        + "'<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
        + "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
        + "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
    static let phi3 = "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + "
        + "'<|end|>\\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}"
        + "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}"
        + "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
    static let phi4 = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '<|im_sep|>' + message['content'] + '<|im_end|>'}}{% endfor %}"
}

/// Each supported format against the prompt text its model card documents (BOS excluded: it is a
/// token, added by `encode`).
@Suite struct ChatTemplateFormatTests {
    /// A byte-level vocabulary with `<s>` (1), `</s>` (2) and the given control tokens.
    static func vocabulary(_ specials: [String], addBOS: Bool = true) -> BPETokenizer {
        let tokens = ["<unk>", "<s>", "</s>"] + specials + (0..<256).map { ByteLevel.encode([UInt8($0)]) }
        let types = tokens.indices.map { $0 < 3 + specials.count ? 3 : 1 }
        return try! BPETokenizer(tokens: tokens, merges: [], tokenTypes: types, preTokenizer: .gpt2,
                                 bosID: 1, eosID: 2, addBOS: addBOS)
    }

    let llama3Vocab = vocabulary(["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>"])

    @Test func detectsEachFamily() {
        let cases: [(String, ChatTemplate.Format?)] = [
            (ChatTemplateSamples.llama3, .llama3), (ChatTemplateSamples.llama31, .llama3),
            (ChatTemplateSamples.gemma3, .gemma), (ChatTemplateSamples.mistralV7, .mistralV7),
            (ChatTemplateSamples.mistralV3, .mistralV3), (ChatTemplateSamples.mistralV3Tekken, .mistralV3Tekken),
            (ChatTemplateSamples.mistralV1, .mistralV1), (ChatTemplateSamples.mistralInstruct, .instPlain),
            (ChatTemplateSamples.llama2, .llama2), (ChatTemplateSamples.phi3, .phi3),
            (ChatTemplateSamples.phi4, nil), (TokenizerFixture.shared.chatTemplate!, .chatML),
            ("llama3", .llama3), ("gemma", .gemma), ("chatml", .chatML), ("mistral-v7", .mistralV7), ("{{ messages }}", nil),
        ]
        for (source, expected) in cases {
            #expect(ChatTemplate.detect(source) == expected, "\(source.prefix(60))")
        }
    }

    @Test func llama3() {
        let t = ChatTemplate(gguf: ChatTemplateSamples.llama3, tokenizer: llama3Vocab)
        #expect(t.unavailableReason == nil && t.systemPreamble == nil)
        #expect(t.render([.system("You are a helpful assistant."), .user(" What is the capital of France? \n")])
            == "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of France?<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n")
        #expect(t.render([.user("Hi"), .assistant("Hello!")], addGenerationPrompt: false)
            == "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>")
        #expect(t.stopTokens == Set(["<|eot_id|>", "<|eom_id|>", "</s>"].map { llama3Vocab.id(of: $0)! }))
        // One BOS although both the vocabulary and the template's `bos_token` ask for it.
        let ids = t.encode([.user("Hi")], with: llama3Vocab)
        #expect(ids.first == 1 && ids.filter { $0 == 1 }.count == 1)
        #expect(ids[1] == llama3Vocab.id(of: "<|start_header_id|>"))
    }

    @Test func llama31DatedSystemTurn() {
        let t = ChatTemplate(gguf: ChatTemplateSamples.llama31, tokenizer: llama3Vocab)
        #expect(t.format == .llama3)
        let header = "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
        #expect(t.render([.system("You are a helpful assistant"), .user("What is the capital of France?")])
            == header + "You are a helpful assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
            + "What is the capital of France?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
        #expect(t.render([.user("Hi")]) == header + "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n")
    }

    @Test func gemmaFoldsSystemIntoFirstUserTurn() {
        let vocab = Self.vocabulary(["<start_of_turn>", "<end_of_turn>"])
        let t = ChatTemplate(gguf: ChatTemplateSamples.gemma3, tokenizer: vocab)
        #expect(t.format == .gemma && t.unavailableReason == nil)
        #expect(t.render([.user("knock knock"), .assistant("who is there"), .user("Gemma"), .assistant("Gemma who?")],
                         addGenerationPrompt: false)
            == "<start_of_turn>user\nknock knock<end_of_turn>\n<start_of_turn>model\nwho is there<end_of_turn>\n"
            + "<start_of_turn>user\nGemma<end_of_turn>\n<start_of_turn>model\nGemma who?<end_of_turn>\n")
        #expect(t.render([.system("You are a helpful assistant."), .user("Hello")])
            == "<start_of_turn>user\nYou are a helpful assistant.\n\nHello<end_of_turn>\n<start_of_turn>model\n")
        #expect(t.stopTokens == [vocab.id(of: "<end_of_turn>")!, 2])
        #expect(t.encode([.user("Hi")], with: vocab).prefix(2) == [1, vocab.id(of: "<start_of_turn>")!])
    }

    @Test func absentTemplateFollowsTheVocabulary() {
        let gemmaVocab = Self.vocabulary(["<start_of_turn>", "<end_of_turn>"])
        let t = ChatTemplate(gguf: nil, tokenizer: gemmaVocab)
        #expect(t.format == .gemma && t.unavailableReason == nil)
        #expect(t.fallbackNotice?.contains("gemma") == true)
        #expect(ChatTemplate(gguf: "{{ odd }}", tokenizer: llama3Vocab).format == .llama3)
    }

    @Test func mistralGenerations() {
        let vocab = Self.vocabulary(["[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"])
        let chat: [ChatMessage] = [.user("user message"), .assistant("assistant message"), .user("new user message")]
        func render(_ source: String, _ messages: [ChatMessage]) -> String {
            ChatTemplate(gguf: source, tokenizer: vocab).render(messages)
        }
        #expect(render(ChatTemplateSamples.mistralV1, chat)
            == " [INST] user message [/INST] assistant message</s> [INST] new user message [/INST]")
        #expect(render(ChatTemplateSamples.mistralV3, chat)
            == "[INST] user message[/INST] assistant message</s>[INST] new user message[/INST]")
        #expect(render(ChatTemplateSamples.mistralV3Tekken, chat)
            == "[INST]user message[/INST]assistant message</s>[INST]new user message[/INST]")
        #expect(render(ChatTemplateSamples.mistralV7, [.system("system prompt")] + chat)
            == "[SYSTEM_PROMPT] system prompt[/SYSTEM_PROMPT][INST] user message[/INST] assistant message</s>"
            + "[INST] new user message[/INST]")
        #expect(render(ChatTemplateSamples.mistralV3, [.system("Be brief."), .user("Hi")]) == "[INST] Be brief.\n\nHi[/INST]")
        #expect(render(ChatTemplateSamples.mistralInstruct, chat)
            == "[INST] user message [/INST]assistant message</s>[INST] new user message [/INST]")
        #expect(ChatTemplate(gguf: ChatTemplateSamples.mistralV3, tokenizer: vocab).stopTokens == [2])
    }

    @Test func llama2AsMetaDocumentsIt() {
        let t = ChatTemplate(gguf: ChatTemplateSamples.llama2, tokenizer: Self.vocabulary([]))
        #expect(t.format == .llama2)
        #expect(t.render([.system("SYS"), .user("Q1"), .assistant("A1"), .user("Q2")])
            == "[INST] <<SYS>>\nSYS\n<</SYS>>\n\nQ1 [/INST] A1 </s><s>[INST] Q2 [/INST]")
    }

    @Test func phi3() {
        let vocab = Self.vocabulary(["<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>"], addBOS: false)
        let t = ChatTemplate(gguf: ChatTemplateSamples.phi3, tokenizer: vocab)
        #expect(t.format == .phi3 && t.unavailableReason == nil)
        #expect(t.render([.system("You are a helpful assistant."), .user("How to explain Internet for a medieval knight?")])
            == "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHow to explain Internet for a medieval knight?<|end|>\n"
            + "<|assistant|>\n")
        #expect(t.stopTokens == Set(["<|end|>", "<|endoftext|>", "</s>"].map { vocab.id(of: $0)! }))
        #expect(t.encode([.user("Hi")], with: vocab).first == vocab.id(of: "<|user|>"))
    }
}
