import Foundation
import Testing
@testable import LoadGen

/// `bench serve`'s code path (`Replay.run`) over real HTTP against memserve on a tiny model.
@Suite("bench serve against a live memserve server", .serialized)
struct EndToEndTests {
    /// The synthetic model's vocabulary is bytes (and a few merges): about six tokens a word.
    static let byteTokens = TokenEstimate(tokensPerWord: 6)

    static func harness() throws -> Harness {
        try Harness.make(contextLength: 8192, maxContext: 8192, blocks: 2048)
    }

    @Test("react traces: all succeed, TTFT <= JCT, the shared prefix is served from the cache, the JSON has its keys")
    func react() async throws {
        try await Self.harness().withLiveServer { port in
            var c = ReplayConfiguration(endpoint: "http://127.0.0.1:\(port)/v1", kind: .react)
            c.requests = 8
            c.seed = 3
            c.lengthScale = 0.2
            c.tokens = Self.byteTokens
            c.arrival = ArrivalOptions(rate: nil, concurrency: 2, seed: 3)
            let r = try await Replay.run(c)
            #expect(r.model == "synthetic")
            #expect(r.maxContext == 8192)
            #expect(r.requests == 8 && r.errors == 0 && r.skipped == 0, "first error: \(r.firstError ?? "none")")
            let records = r.records ?? []
            #expect(records.count == 8)
            for x in records {
                #expect(x.ttftMs > 0 && x.ttftMs <= x.jctMs)
                #expect(x.outputTokens == x.maxTokens, "ignore_eos: exactly max_tokens tokens")
                #expect((x.promptTokens ?? 0) > 1000)
            }
            #expect(r.cachedTokens > 0)
            #expect(r.cachedTokens < r.promptTokens)
            #expect(r.ttftMs.count == 8 && r.jctMs.p99 >= r.jctMs.p50)

            var summary = r
            summary.records = nil
            let json = try LoadGenJSON.string(summary)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            for key in ["requests", "errors", "output_tokens_per_s", "prompt_tokens", "cached_tokens"] {
                #expect(object[key] is NSNumber, "\(key)")
            }
            for key in ["ttft_ms", "tpot_ms", "jct_ms"] {
                let s = try #require(object[key] as? [String: Any], "\(key)")
                for stat in ["avg", "p50", "p90", "p99"] { #expect(s[stat] is NSNumber, "\(key).\(stat)") }
            }
            #expect(object["records"] == nil)
        }
    }

    @Test("sharegpt chats over /v1/chat/completions, with CSV rows")
    func shareGPT() async throws {
        try await Self.harness().withLiveServer { port in
            var c = ReplayConfiguration(endpoint: "http://127.0.0.1:\(port)", kind: .sharegpt)
            c.requests = 6
            c.seed = 2
            c.lengthScale = 0.06
            c.tokens = Self.byteTokens
            c.arrival = ArrivalOptions(rate: 20, concurrency: nil, seed: 2)
            let r = try await Replay.run(c)
            #expect(r.requests == 6 && r.errors == 0, "first error: \(r.firstError ?? "none")")
            for x in r.records ?? [] { #expect(x.ttftMs <= x.jctMs) }
            let csv = CSVWriter.csv(r.records ?? []).split(separator: "\n")
            #expect(csv.count == 7 && csv[0] == Substring(CSVWriter.header))
        }
    }

    @Test("a model the server does not serve: errors counted, the rest of each session skipped")
    func unknownModel() async throws {
        try await Self.harness().withLiveServer { port in
            var c = ReplayConfiguration(endpoint: "http://127.0.0.1:\(port)", kind: .react)
            c.requests = 5
            c.model = "no-such-model"
            c.maxContext = 8192
            c.lengthScale = 0.2
            c.tokens = Self.byteTokens
            let r = try await Replay.run(c)
            #expect(r.errors == r.requests && r.requests >= 1)
            #expect(r.requests + r.skipped == 5)
            #expect(r.firstError?.contains("404") == true)
        }
    }
}
