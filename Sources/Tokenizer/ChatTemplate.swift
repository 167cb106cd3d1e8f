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
/// `tokenizer.chat_template` is recognized as a known format and rendered natively.
public struct ChatTemplate: Sendable {
    /// Chat formats this module renders.
    public enum Format: Sendable, Equatable {
        /// `<|im_start|>role\ncontent<|im_end|>\n` turns (SmolLM, Qwen, Hermes).
        case chatML
    }

    public let format: Format
    /// System prompt the template inserts when a conversation does not start with one.
    public let defaultSystemMessage: String?
    /// Tokens that end an assistant turn.
    public let stopTokens: Set<Int32>

    private static let imStart = "<|im_start|>", imEnd = "<|im_end|>"

    /// Recognizes a GGUF chat template; nil falls back to plain ChatML.
    /// - Throws: `.unsupportedChatTemplate` naming an unknown template, `.missingChatToken`
    ///   when the vocabulary lacks the format's delimiters.
    public init(gguf template: String?, tokenizer: BPETokenizer) throws(TokenizerError) {
        if let template, !template.contains(Self.imStart) {
            let excerpt = template.prefix(80)
            throw .unsupportedChatTemplate(String(excerpt) + (excerpt.count < template.count ? "…" : ""))
        }
        for token in [Self.imStart, Self.imEnd] where tokenizer.id(of: token) == nil {
            throw .missingChatToken(token)
        }
        format = .chatML
        defaultSystemMessage = template.flatMap(Self.defaultSystemMessage(in:))
        stopTokens = Set([tokenizer.id(of: Self.imEnd), tokenizer.eosID].compactMap { $0 })
    }

    /// Prompt text for `messages`, ending with an open assistant turn when `addGenerationPrompt`.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
        var text = ""
        if let defaultSystemMessage, let first = messages.first, first.role != "system" {
            append(role: "system", content: defaultSystemMessage, to: &text)
        }
        for message in messages { append(role: message.role, content: message.content, to: &text) }
        if addGenerationPrompt { text += Self.imStart + "assistant\n" }
        return text
    }

    private func append(role: String, content: String, to text: inout String) {
        text += Self.imStart + role + "\n" + content + Self.imEnd + "\n"
    }

    /// Finds a string literal `'<|im_start|>system\n…<|im_end|>` in the Jinja source whose body is
    /// constant text. A body built from `message['content']` contains the closing quote and is skipped.
    static func defaultSystemMessage(in template: String) -> String? {
        let opener = imStart + "system"
        var searchStart = template.startIndex
        while let found = template[searchStart...].firstRange(of: opener) {
            searchStart = found.upperBound
            guard found.lowerBound > template.startIndex else { continue }
            let quote = template[template.index(before: found.lowerBound)]
            guard quote == "'" || quote == "\"" else { continue }
            var rest = template[found.upperBound...]
            if rest.hasPrefix("\n") {
                rest = rest.dropFirst()
            } else if rest.hasPrefix("\\n") {
                rest = rest.dropFirst(2)
            } else {
                continue
            }
            guard let end = rest.firstRange(of: imEnd) else { continue }
            if let body = unescape(rest[..<end.lowerBound], quote: quote), !body.isEmpty { return body }
        }
        return nil
    }

    /// Resolves Jinja string escapes; nil if an unescaped `quote` ends the literal early.
    private static func unescape(_ literal: Substring, quote: Character) -> String? {
        var result = ""
        var escaping = false
        for ch in literal {
            if escaping {
                switch ch {
                case "n": result.append("\n")
                case "t": result.append("\t")
                default: result.append(ch)
                }
                escaping = false
            } else if ch == "\\" {
                escaping = true
            } else if ch == quote {
                return nil
            } else {
                result.append(ch)
            }
        }
        return escaping ? nil : result
    }
}
