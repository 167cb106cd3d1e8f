import Foundation
import Testing
@testable import Engine

@Suite("Sampling")
struct SamplerTests {
    static func logits(_ values: [Float]) -> [Float] { values }

    func sample(_ params: SamplingParameters, _ logits: [Float], prompt: [Int32] = [], history: [Int32] = []) -> Int32 {
        var s = Sampler(parameters: params, prompt: prompt)
        for t in history { s.accept(t) }
        var l = logits
        return l.withUnsafeMutableBufferPointer { s.sample($0) }
    }

    @Test func greedyPicksArgmaxLowestOnTies() {
        #expect(sample(.greedy, [0.1, 3, -1, 3]) == 1)
        var p = SamplingParameters()
        p.topK = 1
        p.temperature = 5
        #expect(sample(p, [0.1, 3, -1, 2.9]) == 1)
    }

    @Test func sameSeedSameDraws() {
        var p = SamplingParameters()
        p.seed = 1234
        p.temperature = 1.5
        let logits = (0..<100).map { Float($0 % 7) * 0.3 }
        let fixed = p
        func draws() -> [Int32] {
            var s = Sampler(parameters: fixed, prompt: [])
            return (0..<50).map { _ in var l = logits; return l.withUnsafeMutableBufferPointer { s.sample($0) } }
        }
        #expect(draws() == draws())
        p.seed = 99
        var other = Sampler(parameters: p, prompt: [])
        let otherDraws = (0..<50).map { _ in var l = logits; return l.withUnsafeMutableBufferPointer { other.sample($0) } }
        #expect(otherDraws != draws())
    }

    @Test func frequenciesFollowSoftmax() {
        var p = SamplingParameters()
        p.seed = 7
        let logits: [Float] = [0, log(2), log(3), log(4)]  // probabilities 0.1 0.2 0.3 0.4
        var s = Sampler(parameters: p, prompt: [])
        var counts = [0, 0, 0, 0]
        for _ in 0..<20_000 { var l = logits; counts[Int(l.withUnsafeMutableBufferPointer { s.sample($0) })] += 1 }
        for (i, expected) in [0.1, 0.2, 0.3, 0.4].enumerated() {
            #expect(abs(Double(counts[i]) / 20_000 - expected) < 0.015)
        }
    }

    @Test func topKTopPMinPRestrictTheCandidates() {
        let logits: [Float] = [0, log(2), log(3), log(4)]  // 0.1 0.2 0.3 0.4
        for seed in 0..<200 as Range<UInt64> {
            var k = SamplingParameters(); k.seed = seed; k.topK = 2
            #expect([2, 3].contains(sample(k, logits)))
            var p = SamplingParameters(); p.seed = seed; p.topP = 0.65  // 0.4 + 0.3 reaches it
            #expect([2, 3].contains(sample(p, logits)))
            var m = SamplingParameters(); m.seed = seed; m.minP = 0.6  // keeps p >= 0.24
            #expect([2, 3].contains(sample(m, logits)))
        }
    }

    @Test func penalties() {
        // Repetition: a positive logit of a context token is divided.
        var r = SamplingParameters.greedy
        r.repetitionPenalty = 2
        #expect(sample(r, [1, 3, 2], prompt: [1]) == 2)
        // Frequency: 3 occurrences × 0.5 outweigh a 1.0 lead.
        var f = SamplingParameters.greedy
        f.frequencyPenalty = 0.5
        #expect(sample(f, [0, 2, 1], history: [1, 1, 1]) == 2)
        #expect(sample(f, [0, 2, 1], history: [1]) == 1)
        // Presence: once, whatever the count.
        var pr = SamplingParameters.greedy
        pr.presencePenalty = 1.5
        #expect(sample(pr, [0, 2, 1], history: [1]) == 2)
    }

    @Test func validation() {
        var p = SamplingParameters()
        p.temperature = -1
        #expect(p.validationError() != nil)
        p = SamplingParameters(); p.topP = 0
        #expect(p.validationError() != nil)
        p = SamplingParameters(); p.maxTokens = 0
        #expect(p.validationError() != nil)
        p = SamplingParameters(); p.stopStrings = [""]
        #expect(p.validationError() != nil)
        #expect(SamplingParameters().validationError() == nil)
    }
}

@Suite("Stop strings")
struct StopMatcherTests {
    @Test func holdsBackPossibleStopPrefixes() {
        var m = StopMatcher(stops: ["END", "\n\n"])
        #expect(m.feed("Hello E") == ("Hello ", false))
        #expect(m.feed("N") == ("", false))
        #expect(m.feed("X more") == ("ENX more", false))
        #expect(m.feed(" done\n") == (" done", false))
        #expect(m.feed("\nrest") == ("", true))
    }

    @Test func stopInsideOnePiece() {
        var m = StopMatcher(stops: ["<stop>"])
        #expect(m.feed("abc<stop>def") == ("abc", true))
    }

    @Test func earliestStopWins() {
        var m = StopMatcher(stops: ["b", "a"])
        #expect(m.feed("xxab") == ("xx", true))
    }

    @Test func flushReturnsHeldText() {
        var m = StopMatcher(stops: ["STOP"])
        #expect(m.feed("abc ST") == ("abc ", false))
        #expect(m.flush() == "ST")
    }

    @Test func noStopsPassesThrough() {
        var m = StopMatcher(stops: [])
        #expect(m.feed("anything") == ("anything", false))
    }
}
