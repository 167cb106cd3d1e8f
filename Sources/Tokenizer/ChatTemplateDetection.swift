extension ChatTemplate.Format {
    /// The format named `name` (llama.cpp's names, as `tokenizer.chat_template` may hold one).
    public init?(name: String) {
        guard let format = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = format
    }
}

extension ChatTemplate {
    /// The format a Jinja chat template renders, told by the markers only that format writes
    /// (the order matters: Phi-4 and SmolVLM also write `<|im_start|>`, every `[INST]` family
    /// shares that marker). Nil for templates none of the supported formats matches.
    public static func detect(_ template: String) -> Format? {
        if let named = Format(name: template) { return named }
        func has(_ marker: String) -> Bool { template.contains(marker) }
        if has("<|im_start|>") {
            // Phi-4 separates role and content with <|im_sep|>; SmolVLM uses <|im_start|> as BOS only.
            return has("<|im_sep|>") || has("<end_of_utterance>") ? nil : .chatML
        }
        if template.hasPrefix("mistral") || has("[INST]") {
            if has("[SYSTEM_PROMPT]") { return .mistralV7 }
            if has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]") {
                if has(" [INST]") { return .mistralV1 }
                return has("\"[INST]\"") ? .mistralV3Tekken : .mistralV3
            }
            return has("<<SYS>>") ? .llama2 : .instPlain
        }
        if has("<|assistant|>") && has("<|end|>") { return .phi3 }
        if has("<start_of_turn>") { return .gemma }
        if has("<|start_header_id|>") && has("<|end_header_id|>") { return .llama3 }
        return nil
    }

    /// Llama 3.1+'s system preamble, `Cutting Knowledge Date: …\nToday Date: …\n\n`, with the
    /// template's default date (templates that read the clock would change every prompt's
    /// prefix each day and defeat caching, so the written default is used).
    static func llama31Preamble(in template: String) -> String? {
        guard let knowledge = literalText(after: "Cutting Knowledge Date: ", in: template) else { return nil }
        let today = template.firstRange(of: "date_string = \"").flatMap { found in
            template[found.upperBound...].firstIndex(of: "\"").map { String(template[found.upperBound..<$0]) }
        } ?? "26 Jul 2024"
        return "Cutting Knowledge Date: " + knowledge + "\nToday Date: " + today + "\n\n"
    }

    /// The text of a Jinja string literal after `marker`, up to its escaped newline or quote.
    private static func literalText(after marker: String, in template: String) -> String? {
        guard let found = template.firstRange(of: marker) else { return nil }
        var text = ""
        var i = found.upperBound
        while i < template.endIndex {
            let c = template[i]
            if c == "\"" || c == "'" || c == "\n" || c == "\\" { break }
            text.append(c)
            i = template.index(after: i)
        }
        return text.isEmpty ? nil : text
    }

    /// Finds a string literal `'<|im_start|>system\n…<|im_end|>` in the Jinja source whose body is
    /// constant text. A body built from `message['content']` contains the closing quote and is skipped.
    static func defaultSystemMessage(in template: String) -> String? {
        let opener = imStartText + "system"
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
            guard let end = rest.firstRange(of: imEndText) else { continue }
            if let body = unescape(rest[..<end.lowerBound], quote: quote), !body.isEmpty { return body }
        }
        return nil
    }

    private static let imStartText = "<|im_start|>", imEndText = "<|im_end|>"

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
