/// Readable English built from the project's own text (`CorpusText.swift`): chat questions with
/// pasted background, long reports with facts, agent tasks and observations. Lengths are
/// counted in words; `TokenEstimate` turns token targets into word counts.
public enum Corpus {
    /// Every sentence of every paragraph, in order, with the index of its paragraph.
    static let sentences: [(paragraph: Int, text: String)] = {
        var out: [(Int, String)] = []
        for (i, p) in paragraphs.enumerated() {
            for piece in p.text.components(separatedBy: ". ") {
                let s = piece.hasSuffix(".") ? piece : piece + "."
                out.append((i, s))
            }
        }
        return out
    }()

    /// Index of the first sentence of each paragraph.
    static let paragraphStarts: [Int] = {
        var starts: [Int] = []
        for (i, s) in sentences.enumerated() where i == 0 || sentences[i - 1].paragraph != s.paragraph { starts.append(i) }
        return starts
    }()

    static var topics: [String] { paragraphs.map(\.topic) }

    /// Number of words (runs of non-space characters).
    public static func wordCount(_ text: String) -> Int {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" }).count
    }

    /// Exactly `words` words of consecutive sentences starting at sentence `start` (wrapping
    /// around the corpus); a last sentence that does not fit is cut and closed with a full stop.
    static func passage(words: Int, from start: Int) -> String {
        guard words > 0 else { return "" }
        var out: [Substring] = []
        var i = start % sentences.count
        while out.count < words {
            let w = sentences[i].text.split(separator: " ")
            let take = min(w.count, words - out.count)
            out.append(contentsOf: w.prefix(take))
            i = (i + 1) % sentences.count
        }
        return closeSentence(out.joined(separator: " "))
    }

    /// A passage starting at a seeded sentence.
    public static func passage(words: Int, rng: inout SeededRandom) -> String {
        passage(words: words, from: rng.int(in: 0...(sentences.count - 1)))
    }

    /// The first `words` words of `text` (at least one), ending in `mark` if they were cut.
    static func cut(_ text: String, words: Int, mark: String) -> String {
        let w = text.split(separator: " ")
        if w.count <= words { return text }
        var s = w.prefix(max(1, words)).joined(separator: " ")
        while let last = s.last, last == "," || last == ";" || last == ":" { s.removeLast() }
        return s + mark
    }

    static func closeSentence(_ text: String) -> String {
        var s = text
        while let last = s.last, last == "," || last == ";" || last == ":" { s.removeLast() }
        if let last = s.last, last == "." || last == "?" || last == "!" { return s }
        return s + "."
    }

    static func fill(_ template: String, _ values: [String: String]) -> String {
        var s = template
        for (k, v) in values { s = s.replacingOccurrences(of: "{\(k)}", with: v) }
        return s
    }

    // MARK: - Chat

    /// A user message of exactly `words` words: a question (an opening question on `topic` in the
    /// first turn, a follow-up later), then pasted background from the topic's paragraph onward.
    static func userMessage(words: Int, topic: Int, firstTurn: Bool, rng: inout SeededRandom) -> String {
        let question = firstTurn
            ? fill(rng.pick(openingQuestions), ["topic": paragraphs[topic].topic])
            : rng.pick(followUps)
        let qWords = wordCount(question)
        if words <= qWords { return cut(question, words: words, mark: "?") }
        let lead = rng.pick(backgroundLeads)
        let leadWords = wordCount(lead)
        if words <= qWords + leadWords { return question + " " + cut(lead, words: words - qWords, mark: ":") }
        let start = paragraphStarts[topic] + rng.int(in: 0...2)
        return question + " " + lead + " " + passage(words: words - qWords - leadWords, from: start)
    }

    // MARK: - Documents

    /// A long report: a title, then sections of a paragraph each, every section followed by
    /// two sentences of seeded facts (names, years, counts) so that questions have answers.
    struct Document: Sendable, Equatable {
        var title: String
        var sectionTopics: [String]
        var text: String
    }

    /// A document of exactly `words` words.
    static func document(words: Int, rng: inout SeededRandom) -> Document {
        let place = rng.pick(places)
        let title = "the \(rng.pick(["natural history", "economy", "daily life", "landscape", "heritage"])) of \(place)"
        var order = Array(paragraphs.indices)
        order.shuffle(using: &rng)
        var parts: [String] = ["Report on \(title).", "Prepared for the \(place) Historical Society."]
        var used = parts.reduce(0) { $0 + wordCount($1) }
        var sectionTopics: [String] = []
        var year = rng.int(in: 1890...1990)
        var section = 0
        // Bounded: each section adds words, so at most `words` sections.
        while used < words && section < words {
            let p = paragraphs[order[section % order.count]]
            section += 1
            year += rng.int(in: 1...6)
            let person = rng.pick(people), role = rng.pick(roles), thing = rng.pick(countedThings)
            let first = rng.int(in: 12...900), change = rng.int(in: 2...40)
            let body = [
                "Section \(section): \(p.topic.prefix(1).uppercased() + p.topic.dropFirst()).",
                p.text,
                "In \(year), \(person), \(role), counted \(first) \(thing) around \(place), \(change) \(rng.int(in: 0...1) == 0 ? "more" : "fewer") than in the survey before.",
                "The figures were checked by \(rng.pick(people)) and kept in the society's archive.",
            ].joined(separator: " ")
            let n = wordCount(body)
            if used + n <= words {
                parts.append(body)
                used += n
            } else {
                parts.append(closeSentence(body.split(separator: " ").prefix(words - used).joined(separator: " ")))
                used = words
            }
            sectionTopics.append(p.topic)
        }
        return Document(title: title, sectionTopics: sectionTopics, text: parts.joined(separator: "\n\n"))
    }

    /// A question about `document` (naming its title and one of its sections).
    static func documentQuestion(_ document: Document, rng: inout SeededRandom) -> String {
        fill(rng.pick(documentQuestions), ["title": document.title, "topic": rng.pick(document.sectionTopics)])
    }

    // MARK: - Agent traces

    /// The instruction and worked examples every agent trace starts with.
    public static var agentPrefix: String {
        agentInstruction + "\n\n" + agentExamples.joined(separator: "\n\n") + "\n\n"
    }

    /// An agent task about two topics (indices into the paragraphs).
    static func agentTask(topic: Int, other: Int, rng: inout SeededRandom) -> String {
        fill(rng.pick(agentTasks), ["topic": paragraphs[topic].topic, "other": paragraphs[other].topic])
    }

    /// What a Search or Lookup returns: `words` words of the entry on `topic`, starting at one
    /// of its sentences.
    static func observation(words: Int, topic: Int, rng: inout SeededRandom) -> String {
        passage(words: words, from: paragraphStarts[topic] + rng.int(in: 0...3))
    }
}

/// Sizing prompts in tokens without the server's tokenizer: a token target becomes a word count
/// at a fixed tokens-per-word ratio. The default is the ratio of this corpus under the default
/// model's byte-pair tokenizer (SmolLM2); other tokenizers differ a little, which is why the
/// real counts are read back from `usage.prompt_tokens` and reported.
public struct TokenEstimate: Sendable, Codable, Equatable {
    public var tokensPerWord: Double

    public init(tokensPerWord: Double = 1.15) { self.tokensPerWord = tokensPerWord }

    /// Words for a target of `tokens` tokens (at least one).
    public func words(forTokens tokens: Int) -> Int { max(1, Int((Double(tokens) / tokensPerWord).rounded())) }

    /// Estimated tokens of `text`.
    public func tokens(in text: String) -> Int { Int((Double(Corpus.wordCount(text)) * tokensPerWord).rounded()) }
}
