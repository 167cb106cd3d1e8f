import Foundation
import GGUF
import Model
import Testing
@testable import Engine

@Suite("Engine service (async front of the engine thread)")
struct EngineServiceTests {
    static func service(blocks: Int = 64) throws -> EngineService {
        var options = ModelOptions()
        options.maxBatchTokens = 64
        options.maxContext = 256
        options.maxLogitRows = 16
        let model = try LoadedModel(file: GGUFFile(bytes: SyntheticModel.gguf()), name: "synthetic", options: options, threads: 1)
        return EngineService(model: model, memPool: try model.makeMemPool(hotBlocks: blocks))
    }

    static func params(_ maxTokens: Int) -> SamplingParameters {
        var p = SamplingParameters.greedy
        p.maxTokens = maxTokens
        p.ignoreEOS = true
        return p
    }

    @Test("concurrent submissions stream to the end; a cancelled one is aborted")
    func concurrentAndCancelled() async throws {
        let s = try Self.service()
        defer { s.shutdown() }
        let prompts: [[Int32]] = [Array(5..<40), Array(60..<75), Array(100..<190)]
        let results = try await withThrowingTaskGroup(of: (Int, [Int32], FinishReason?).self) { group in
            for (i, p) in prompts.enumerated() {
                let (_, stream) = try s.submit(promptTokens: p, sampling: Self.params(10))
                group.addTask {
                    var tokens: [Int32] = []
                    var finish: FinishReason?
                    for try await out in stream {
                        if let t = out.token { tokens.append(t) }
                        finish = out.finishReason ?? finish
                    }
                    return (i, tokens, finish)
                }
            }
            var all: [Int: ([Int32], FinishReason?)] = [:]
            for try await (i, t, f) in group { all[i] = (t, f) }
            return all
        }
        for i in prompts.indices {
            #expect(results[i]!.0.count == 10)
            #expect(results[i]!.1 == .length)
        }
        // A consumer that goes away: its request is aborted and its blocks come back.
        let (_, stream) = try s.submit(promptTokens: Array(1..<30), sampling: Self.params(200))
        for try await _ in stream { break }
        var tries = 0
        while s.stats.running + s.stats.waiting > 0 || s.stats.hot.used > 0 {
            try await Task.sleep(for: .milliseconds(5))
            tries += 1
            #expect(tries < 400, "abort did not free the request")
            if tries >= 400 { break }
        }
    }

    @Test("bad requests fail at submit with the engine's error")
    func submitErrors() throws {
        let s = try Self.service(blocks: 4)
        defer { s.shutdown() }
        #expect(throws: EngineError.emptyPrompt) { try s.submit(promptTokens: [], sampling: .greedy) }
        #expect(throws: EngineError.self) { try s.submit(promptTokens: Array(repeating: 5, count: 100), sampling: .greedy) }
        s.shutdown()
        var tries = 0
        while !s.isStopped && tries < 400 { Thread.sleep(forTimeInterval: 0.005); tries += 1 }
        #expect(s.isStopped)
        #expect(throws: EngineError.shuttingDown) { try s.submit(promptTokens: [5, 6], sampling: .greedy) }
    }
}
