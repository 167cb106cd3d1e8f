/// One turn of a conversation.
public struct ChatMessage: Sendable, Codable, Equatable {
    /// "system", "user" or "assistant".
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }

    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: "system", content: content) }
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
    public static func assistant(_ content: String) -> ChatMessage { ChatMessage(role: "assistant", content: content) }
}

/// Renders conversations into prompt text. Rather than run Jinja, the GGUF
/// `tokenizer.chat_template` is recognized by its distinctive markers as one of the common
/// formats (as llama.cpp's built-in templates do) and rendered natively.
///
/// The rendered text never contains the BOS token: `encode` prepends it when the vocabulary
/// adds one or the template writes `bos_token`, so it is never doubled.
public struct ChatTemplate: Sendable {
    /// Chat formats this module renders; `name` is llama.cpp's name for each.
    public enum Format: Sendable, Equatable, CaseIterable {
        /// `<|im_start|>role\ncontent<|im_end|>\n` turns (SmolLM, Qwen, Hermes).
        case chatML
        /// `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>` (Llama 3.x).
        case llama3
        /// `<start_of_turn>user|model\n…<end_of_turn>\n`; system text opens the first user turn (Gemma 1–3).
        case gemma
        /// Mistral's `[INST] … [/INST]` generations (mistralai's cookbook "v1", "v3", "v3-tekken", "v7").
        case mistralV1, mistralV3, mistralV3Tekken, mistralV7
        /// Llama 2 chat as Meta documents it: `[INST] <<SYS>>\n…\n<</SYS>>\n\nuser [/INST] answer </s><s>[INST] …`.
        case llama2
        /// Other `[INST]` templates (Mistral 7B Instruct v0.1/v0.2 on Hugging Face): llama.cpp's "llama2".
        case instPlain
        /// `<|role|>\ncontent<|end|>\n` (Phi-3).
        case phi3

        public var name: String {
            switch self {
            case .chatML: "chatml"
            case .llama3: "llama3"
            case .gemma: "gemma"
            case .mistralV1: "mistral-v1"
            case .mistralV3: "mistral-v3"
            case .mistralV3Tekken: "mistral-v3-tekken"
            case .mistralV7: "mistral-v7"
            case .llama2: "llama2-sys-strip"
            case .instPlain: "llama2"
            case .phi3: "phi3"
            }
        }

        /// Special tokens the format's text relies on; without them it would be tokenized as prose.
        var delimiters: [String] {
            switch self {
            case .chatML: ["<|im_start|>", "<|im_end|>"]
            case .llama3: ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
            case .gemma: ["<start_of_turn>", "<end_of_turn>"]
            case .phi3: ["<|user|>", "<|assistant|>", "<|end|>"]
            // [INST] is plain text in the SentencePiece vocabularies of these generations.
            case .mistralV1, .mistralV3, .mistralV3Tekken, .mistralV7, .llama2, .instPlain: []
            }
        }

        /// Tokens besides EOS that end an assistant turn.
        var endOfTurn: [String] {
            switch self {
            case .chatML: ["<|im_end|>"]
            case .llama3: ["<|eot_id|>", "<|eom_id|>"]
            case .gemma: ["<end_of_turn>"]
            case .phi3: ["<|end|>", "<|endoftext|>"]
            case .mistralV1, .mistralV3, .mistralV3Tekken, .mistralV7, .llama2, .instPlain: []
            }
        }
    }

    public let format: Format
    /// System prompt the template inserts when a conversation does not start with one (ChatML
    /// templates with a constant default, Llama 3.1's dated preamble is handled separately).
    public let defaultSystemMessage: String?
    /// Llama 3.1+: the "Cutting Knowledge Date / Today Date" text that opens every system turn.
    public let systemPreamble: String?
    /// Tokens that end an assistant turn.
    public let stopTokens: Set<Int32>
    /// Prepend BOS when encoding a rendered conversation.
    public let addsBOS: Bool
    /// Set when the file's template was not recognized (or absent) and ChatML stands in: the
    /// loader logs it as a warning, as llama.cpp's server does.
    public let fallbackNotice: String?
    /// Set when chat cannot be served with this vocabulary (the format's delimiters are not
    /// tokens); chat requests are refused with it, completions are unaffected.
    public let unavailableReason: String?

    /// Recognizes a GGUF chat template (or one of llama.cpp's template names). Never fails: an
    /// unknown or absent template falls back to ChatML, with `fallbackNotice` saying so, unless
    /// the vocabulary lacks ChatML's tokens and has another format's (a Gemma or Llama 3 base
    /// model without a template), which is then used.
    public init(gguf template: String?, tokenizer: BPETokenizer) {
        var notice: String?
        let format: Format
        if let template, let detected = Self.detect(template) {
            format = detected
        } else {
            format = [Format.chatML, .gemma, .llama3, .phi3].first { f in
                f.delimiters.allSatisfy { tokenizer.id(of: $0) != nil }
            } ?? .chatML
            let uses = format == .chatML ? "chat uses ChatML" : "chat uses \(format.name), whose tokens the vocabulary has"
            if let template {
                let excerpt = template.prefix(80)
                notice = "the model's chat template is not one of the supported formats "
                    + "(\(Format.allCases.map(\.name).joined(separator: ", "))); \(uses), which may not suit this model: "
                    + (String(excerpt) + (excerpt.count < template.count ? "…" : "")).debugDescription
            } else {
                notice = "the model file has no chat template; \(uses)"
            }
        }
        self.format = format
        fallbackNotice = notice
        unavailableReason = format.delimiters.first { tokenizer.id(of: $0) == nil }.map {
            TokenizerError.missingChatToken($0).description + " (the \(format.name) chat format cannot be rendered; "
                + "use /v1/completions with your own prompt)"
        }
        defaultSystemMessage = format == .chatML ? template.flatMap(Self.defaultSystemMessage(in:)) : nil
        systemPreamble = format == .llama3 ? template.flatMap(Self.llama31Preamble(in:)) : nil
        stopTokens = Set((format.endOfTurn.map { tokenizer.id(of: $0) } + [tokenizer.eosID]).compactMap { $0 })
        addsBOS = tokenizer.addsBOS || (template?.contains("bos_token") ?? false)
    }

    /// Tokens of `messages` rendered, with BOS when the model wants it.
    public func encode(_ messages: [ChatMessage], with tokenizer: BPETokenizer, addGenerationPrompt: Bool = true) -> [Int32] {
        tokenizer.encode(render(messages, addGenerationPrompt: addGenerationPrompt), parseSpecial: true, addBOS: addsBOS)
    }

    /// Prompt text for `messages`, ending with an open assistant turn when `addGenerationPrompt`
    /// (the Mistral and Llama 2 formats have none: a user turn's `[/INST]` already opens it).
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
        switch format {
        case .chatML: renderChatML(messages, addGenerationPrompt)
        case .llama3: renderLlama3(messages, addGenerationPrompt)
        case .gemma: renderGemma(messages, addGenerationPrompt)
        case .mistralV1, .mistralV3, .mistralV3Tekken: renderMistral(messages)
        case .mistralV7: renderMistralV7(messages)
        case .llama2: renderLlama2(messages)
        case .instPlain: renderInstPlain(messages)
        case .phi3: renderPhi3(messages, addGenerationPrompt)
        }
    }

    private static let imStart = "<|im_start|>", imEnd = "<|im_end|>"

    private func renderChatML(_ messages: [ChatMessage], _ addGenerationPrompt: Bool) -> String {
        var text = ""
        func turn(_ role: String, _ content: String) { text += Self.imStart + role + "\n" + content + Self.imEnd + "\n" }
        if let defaultSystemMessage, let first = messages.first, first.role != "system" { turn("system", defaultSystemMessage) }
        for m in messages { turn(m.role, m.content) }
        if addGenerationPrompt { text += Self.imStart + "assistant\n" }
        return text
    }

    private func renderLlama3(_ messages: [ChatMessage], _ addGenerationPrompt: Bool) -> String {
        var text = ""
        func turn(_ role: String, _ content: String) {
            text += "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + content + "<|eot_id|>"
        }
        var rest = messages[...]
        if let systemPreamble {
            // Llama 3.1's template always opens with a system turn carrying its dates.
            var system = ""
            if let first = rest.first, first.role == "system" {
                system = Self.trim(first.content)
                rest = rest.dropFirst()
            }
            turn("system", systemPreamble + system)
        }
        for m in rest { turn(m.role, Self.trim(m.content)) }
        if addGenerationPrompt { text += "<|start_header_id|>assistant<|end_header_id|>\n\n" }
        return text
    }

    private func renderGemma(_ messages: [ChatMessage], _ addGenerationPrompt: Bool) -> String {
        // Gemma has no system role: its template prefixes the first user turn with the system
        // text and a blank line.
        var text = "", pendingSystem = ""
        for m in messages {
            if m.role == "system" {
                pendingSystem += m.content + "\n\n"
                continue
            }
            let role = m.role == "assistant" ? "model" : m.role
            text += "<start_of_turn>" + role + "\n"
            if role != "model" {
                text += pendingSystem
                pendingSystem = ""
            }
            text += Self.trim(m.content) + "<end_of_turn>\n"
        }
        if addGenerationPrompt { text += "<start_of_turn>model\n" }
        return text
    }

    /// mistralai's v1 (`[INST]` spaced on both sides), v3 (trimmed answers) and v3-tekken (no
    /// spaces); a system message opens the next `[INST]` block.
    private func renderMistral(_ messages: [ChatMessage]) -> String {
        let lead = format == .mistralV1 ? " " : "", trail = format == .mistralV3Tekken ? "" : " "
        var text = "", insideTurn = false
        for m in messages {
            if !insideTurn {
                text += lead + "[INST]" + trail
                insideTurn = true
            }
            switch m.role {
            case "system": text += m.content + "\n\n"
            case "user": text += m.content + lead + "[/INST]"
            default:
                text += trail + (format == .mistralV3 ? Self.trim(m.content) : m.content) + "</s>"
                insideTurn = false
            }
        }
        return text
    }

    private func renderMistralV7(_ messages: [ChatMessage]) -> String {
        var text = ""
        for m in messages {
            switch m.role {
            case "system": text += "[SYSTEM_PROMPT] " + m.content + "[/SYSTEM_PROMPT]"
            case "user": text += "[INST] " + m.content + "[/INST]"
            default: text += " " + m.content + "</s>"
            }
        }
        return text
    }

    private func renderLlama2(_ messages: [ChatMessage]) -> String {
        var text = "", system: String?, first = true
        for m in messages {
            switch m.role {
            case "system": system = Self.trim(m.content)
            case "user":
                var content = Self.trim(m.content)
                if let s = system {
                    content = "<<SYS>>\n" + s + "\n<</SYS>>\n\n" + content
                    system = nil
                }
                text += (first ? "" : "<s>") + "[INST] " + content + " [/INST]"
                first = false
            default:
                text += " " + Self.trim(m.content) + " </s>"
            }
        }
        return text
    }

    private func renderInstPlain(_ messages: [ChatMessage]) -> String {
        var text = "[INST] ", insideTurn = true
        for m in messages {
            if !insideTurn {
                text += "[INST] "
                insideTurn = true
            }
            switch m.role {
            case "system": text += m.content + "\n"
            case "user": text += m.content + " [/INST]"
            default:
                text += m.content + "</s>"
                insideTurn = false
            }
        }
        return text
    }

    private func renderPhi3(_ messages: [ChatMessage], _ addGenerationPrompt: Bool) -> String {
        var text = ""
        for m in messages { text += "<|" + m.role + "|>\n" + m.content + "<|end|>\n" }
        if addGenerationPrompt { text += "<|assistant|>\n" }
        return text
    }

    /// Jinja's `trim`: leading and trailing whitespace.
    static func trim(_ s: String) -> String {
        var sub = Substring(s)
        while let c = sub.first, c.isWhitespace { sub.removeFirst() }
        while let c = sub.last, c.isWhitespace { sub.removeLast() }
        return String(sub)
    }
}
