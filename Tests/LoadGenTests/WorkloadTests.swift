import Foundation
import Testing
@testable import LoadGen

@Suite("Workload generators: distributions, seeds, repeated prefixes")
struct WorkloadTests {
    static let huge = 1 << 20
    static let estimate = TokenEstimate()

    static func fake(_ s: Session, _ step: Int) -> String { "answer \(s.id).\(step) with some words" }

    /// Prompts of every step of `s`, with made-up answers.
    static func prompts(_ s: Session) -> [Prompt] {
        var answers: [String] = []
        return (0..<s.steps).map { k in
            defer { answers.append(fake(s, k)) }
            return s.prompt(step: k, answers: answers)
        }
    }

    static func mean(_ xs: [Double]) -> Double { xs.reduce(0, +) / Double(xs.count) }

    static func close(_ x: Double, _ target: Double, _ tolerance: Double) -> Bool { abs(x - target) <= tolerance * target }

    @Test("the same seed gives the same workload, another seed another one", arguments: WorkloadKind.allCases)
    func seeds(kind: WorkloadKind) {
        let a = Workload(kind: kind, options: WorkloadOptions(seed: 7, requests: 40))
        let b = Workload(kind: kind, options: WorkloadOptions(seed: 7, requests: 40))
        let c = Workload(kind: kind, options: WorkloadOptions(seed: 8, requests: 40))
        #expect(a == b)
        #expect(a != c)
        #expect(a.requestCount == 40 && c.requestCount == 40)
    }

    @Test("prompts are English text from the corpus: printable characters, real words", arguments: WorkloadKind.allCases)
    func readable(kind: WorkloadKind) {
        let w = Workload(kind: kind, options: WorkloadOptions(seed: 2, requests: 12, maxContext: 4096))
        let text = w.sessions.flatMap(Self.prompts).map(\.flattened).joined()
        #expect(text.unicodeScalars.allSatisfy { ($0.value >= 32 && $0.value < 127) || $0 == "\n" })
        let words = text.lowercased().split { !$0.isLetter }
        let common = words.filter { ["the", "and", "of", "a", "to"].contains($0) }.count
        #expect(Double(common) > 0.08 * Double(words.count))
    }

    @Test("sharegpt: turn counts and lengths follow the cited figures")
    func shareGPTDistributions() {
        let w = Workload(kind: .sharegpt, options: WorkloadOptions(seed: 11, requests: 8000, maxContext: Self.huge))
        let sessions = w.sessions.dropLast()  // the last one may be cut to the request count
        let turns = sessions.map { Double($0.steps) }
        let single = Double(turns.filter { $0 == 1 }.count) / Double(turns.count)
        #expect(abs(single - (1 - ShareGPTShape.multiTurnFraction)) < 0.03, "single-turn fraction \(single)")
        // Expected turns: 0.27 * 1 + 0.73 * E[min(2 + K, 16)], K geometric with p = 1 / 3.5.
        let p = 1 / (ShareGPTShape.meanMultiTurnTurns - 1)
        var multi = 0.0, mass = 0.0
        for t in 2..<ShareGPTShape.maxTurns {
            let q = pow(1 - p, Double(t - 2)) * p
            multi += Double(t) * q
            mass += q
        }
        multi += Double(ShareGPTShape.maxTurns) * (1 - mass)
        let expected = (1 - ShareGPTShape.multiTurnFraction) + ShareGPTShape.multiTurnFraction * multi
        #expect(abs(Self.mean(turns) - expected) < 0.2, "mean turns \(Self.mean(turns)), expected \(expected)")
        let answers = w.sessions.flatMap(\.maxTokens).map(Double.init)
        #expect(Self.close(Self.mean(answers), ShareGPTShape.meanAnswerTokens, 0.05), "answer mean \(Self.mean(answers))")
        var users: [Double] = []
        for s in w.sessions { if case .chat(let u) = s.shape { users += u.map { Double(Self.estimate.tokens(in: $0)) } } }
        #expect(Self.close(Self.mean(users), ShareGPTShape.meanPromptTokens, 0.05), "prompt mean \(Self.mean(users))")
        // Log-normal: a long right tail, the median well under the mean.
        let sorted = answers.sorted()
        #expect(Statistics.percentile(sorted, 50) < 0.85 * Self.mean(answers))
    }

    @Test("sharegpt: every turn resends the previous turn's prompt and answer, then one new user message")
    func shareGPTPrefixes() {
        let w = Workload(kind: .sharegpt, options: WorkloadOptions(seed: 5, requests: 200, maxContext: 8192))
        var multiTurn = 0
        for s in w.sessions {
            let ps = Self.prompts(s)
            for k in 1..<max(1, ps.count) {
                guard case .chat(let before) = ps[k - 1], case .chat(let now) = ps[k] else { Issue.record("not a chat"); return }
                #expect(Array(now.prefix(before.count)) == before)
                #expect(now[before.count] == ChatMessage(role: "assistant", content: Self.fake(s, k - 1)))
                #expect(now.count == before.count + 2 && now.last?.role == "user")
                #expect(ps[k].flattened.hasPrefix(ps[k - 1].flattened + "assistant: " + Self.fake(s, k - 1)))
                multiTurn += 1
            }
        }
        #expect(multiTurn > 50)
    }

    @Test("sharegpt: a conversation stays inside the context")
    func shareGPTContext() {
        let o = WorkloadOptions(seed: 9, requests: 500, maxContext: 2048)
        for s in Workload(kind: .sharegpt, options: o).sessions {
            guard case .chat(let users) = s.shape else { continue }
            let tokens = users.map { Self.estimate.tokens(in: $0) }.reduce(0, +) + s.maxTokens.reduce(0, +)
            #expect(tokens + 2 * 8 * s.steps <= o.budget + 2 * s.steps, "session \(s.id): \(tokens) tokens")
        }
    }

    static func document(_ s: Session) -> String {
        guard case .trace(let head, _) = s.shape else { return "" }
        return head.components(separatedBy: "\n\nQuestion: ").first ?? ""
    }

    @Test("loogle: documents of 2K to 6K tokens, 3 to 6 questions each")
    func looGLEDistributions() {
        let w = Workload(kind: .loogle, options: WorkloadOptions(seed: 4, requests: 900, maxContext: 8192))
        var docs: [Int: (tokens: Int, questions: Int)] = [:]
        for s in w.sessions {
            let t = Self.estimate.tokens(in: Self.document(s)) - Self.estimate.tokens(in: LooGLEShape.instruction)
            docs[s.group, default: (t, 0)].questions += 1
            #expect(docs[s.group]!.tokens == t)
        }
        let lastWindow = (docs.keys.max()! / LooGLEShape.window) * LooGLEShape.window
        let complete = docs.filter { $0.key < lastWindow }.values
        #expect(complete.count > 150)
        for d in complete {
            #expect((1998...6002).contains(d.tokens), "document of \(d.tokens) tokens")
            #expect(LooGLEShape.questionsPerDocument.contains(d.questions))
        }
        #expect(Self.close(Self.mean(complete.map { Double($0.tokens) }), 4000, 0.06))
        #expect(Self.close(Self.mean(complete.map { Double($0.questions) }), 4.5, 0.08))
        let answers = w.sessions.flatMap(\.maxTokens).map(Double.init)
        #expect(Self.close(Self.mean(answers), LooGLEShape.meanAnswerTokens, 0.08))
    }

    @Test("loogle: the questions of a document share it, other documents differ, questions interleave")
    func looGLESharing() {
        let w = Workload(kind: .loogle, options: WorkloadOptions(seed: 6, requests: 60, maxContext: 8192))
        var byGroup: [Int: String] = [:]
        for s in w.sessions {
            let doc = Self.document(s)
            if let seen = byGroup[s.group] { #expect(seen == doc) } else { byGroup[s.group] = doc }
            #expect(Self.prompts(s)[0].flattened.hasPrefix(doc + "\n\nQuestion: "))
        }
        #expect(Set(byGroup.values).count == byGroup.count)
        let groups = w.sessions.map(\.group)
        let switches = zip(groups, groups.dropFirst()).filter { $0 != $1 }.count
        #expect(switches > byGroup.count, "questions of a document arrive together: \(groups)")
    }

    @Test("loogle: documents shrink to fit a small context")
    func looGLEContext() {
        let o = WorkloadOptions(seed: 6, requests: 30, maxContext: 2048)
        for s in Workload(kind: .loogle, options: o).sessions {
            #expect(Self.estimate.tokens(in: Self.document(s)) + s.maxTokens[0] <= o.budget)
        }
    }

    @Test("react: every trace starts with the shared prefix and each step extends the previous one")
    func reactPrefixes() {
        let w = Workload(kind: .react, options: WorkloadOptions(seed: 3, requests: 600, maxContext: 8192))
        let steps = w.sessions.dropLast().map(\.steps)
        #expect(steps.allSatisfy { ReActShape.steps.contains($0) })
        #expect(abs(Self.mean(steps.map(Double.init)) - 5) < 0.4)
        let thoughts = w.sessions.flatMap(\.maxTokens).map(Double.init)
        #expect(Self.close(Self.mean(thoughts), ReActShape.meanThoughtTokens, 0.06))
        for s in w.sessions {
            let ps = Self.prompts(s).map(\.flattened)
            #expect(ps[0].hasPrefix(Corpus.agentPrefix + "Question: "))
            for k in 1..<max(1, ps.count) {
                let grown = ps[k - 1] + Self.fake(s, k - 1)
                #expect(ps[k].hasPrefix(grown + "\nObservation: "))
                #expect(ps[k].hasSuffix("\nThought:"))
            }
        }
    }

    @Test("lengths scale with --scale")
    func scale() {
        let full = Workload(kind: .sharegpt, options: WorkloadOptions(seed: 1, requests: 2000, maxContext: Self.huge))
        let quarter = Workload(kind: .sharegpt, options: WorkloadOptions(seed: 1, requests: 2000, maxContext: Self.huge, lengthScale: 0.25))
        let a = Self.mean(full.sessions.flatMap(\.maxTokens).map(Double.init))
        let b = Self.mean(quarter.sessions.flatMap(\.maxTokens).map(Double.init))
        #expect(abs(b / a - 0.25) < 0.02)
    }

    @Test("Poisson arrivals: seeded, with the asked mean gap")
    func arrivals() {
        let a = ArrivalOptions(rate: 4, seed: 2)
        let t = a.arrivalTimes(count: 4000)
        #expect(t == a.arrivalTimes(count: 4000))
        #expect(t.first == 0 && zip(t, t.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(abs(t.last! / 3999 - 0.25) < 0.02)
        #expect(ArrivalOptions(rate: nil, concurrency: 3).arrivalTimes(count: 5) == [0, 0, 0, 0, 0])
    }
}
