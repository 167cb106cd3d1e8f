import Router
import Cluster
import Engine
import Foundation
import Testing

@Suite("What the front end reports about its instances", .serialized)
struct HealthTests {
    /// Waits (bounded) until `condition` holds; returns whether it did.
    static func eventually(_ condition: () -> Bool) async throws -> Bool {
        for _ in 0..<1000 {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    @Test("a router can serve while a prefill and a decode instance answer, and not once the decode instance is gone")
    func canServeFollowsMembers() async throws {
        let n = try await LocalNodes.start([.prefill, .decode], mode: .caching2)
        #expect(n.front.canServe)
        n.decode.shutdown()
        _ = try? await n.tasks[1].value
        #expect(try await Self.eventually { !n.front.canServe }, "a prefill instance alone cannot serve (/health answers 503)")
        #expect(try await Self.eventually { !n.front.memberList.first { $0.description.role == .decode }!.connected })
        await n.stop()
    }
}
