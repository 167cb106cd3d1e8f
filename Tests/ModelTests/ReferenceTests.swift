import Foundation
import Testing
@testable import Model

/// The engine against an independent numpy implementation (scripts/reference_llama.py) over
/// the same dequantized weights: last-position logits and 16 greedy tokens for fixed prompts.
@Suite("Reference logits of the real model", .serialized, .enabled(if: RealModel.available))
struct ReferenceTests {
    struct Fixture: Decodable {
        struct Tolerance: Decodable { let logits_abs: Float }
        struct Prompt: Decodable {
            let name: String
            let token_ids: [Int32]
            let top_ids: [Int]
            let top_logits: [Float]
            let random_logits: [Float]
            let greedy_ids: [Int32]
        }
        let tolerance: Tolerance
        let random_ids: [Int]
        let prompts: [Prompt]
    }

    static let fixture: Fixture = {
        let url = Bundle.module.url(forResource: "Fixtures/reference_logits", withExtension: "json")!
        return try! JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }()

    /// Stated tolerance: the fixture's 1e-3 absolute (10x the fp32-vs-fp64 summation-order
    /// difference the script measured), applied to the top-64 and 256 random vocabulary ids.
    @Test("last-position logits and greedy continuation match", arguments: fixture.prompts.map(\.name))
    func matchesReference(name: String) async throws {
        let model = try #require(RealModel.shared)
        let p = Self.fixture.prompts.first { $0.name == name }!
        let tol = Self.fixture.tolerance.logits_abs
        let (logits, tokens) = try await offPool { try Runner(model: model).run(p.token_ids, greedy: p.greedy_ids.count) }

        let top1 = logits.indices.max { logits[$0] < logits[$1] }!
        #expect(top1 == p.top_ids[0])
        var worst: Float = 0
        for (id, ref) in zip(p.top_ids, p.top_logits) { worst = max(worst, abs(logits[id] - ref)) }
        for (id, ref) in zip(Self.fixture.random_ids, p.random_logits) { worst = max(worst, abs(logits[id] - ref)) }
        #expect(worst <= tol, "max |Δlogit| = \(worst) > \(tol)")
        #expect(tokens == p.greedy_ids)
    }
}
