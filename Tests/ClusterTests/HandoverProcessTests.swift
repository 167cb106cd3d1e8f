import Foundation
import Testing
@testable import Router
import Cluster
import Engine

/// The elastic pool's graceful leave across processes: `memserve instance` on SIGTERM hands the
/// prefixes only it caches to a peer through the router before it exits.
@Suite("Graceful leave of an instance process", .serialized)
struct HandoverProcessTests {
    @Test("SIGTERM: the only copy of a prefix moves to the survivor, which then serves it cached")
    func sigtermHandsOver() async throws {
        let a = try await InstanceProcess.start(role: "colocated", mode: .caching1, model: ProcessModel.path, listen: "127.0.0.2:0")
        defer { a.kill() }
        let b = try await InstanceProcess.start(role: "colocated", mode: .caching1, model: ProcessModel.path, listen: "127.0.0.3:0")
        defer { b.kill() }
        let router = try await ClusterRouter.connect(model: ProcessModel.loaded.served, peers: [a.address, b.address])
        defer { router.shutdown() }
        try await eventually("both connected") { router.memberList.filter(\.connected).count == 2 }

        let document: [Int32] = (0..<96).map { Int32(3 + ($0 * 43 + 5) % 250) }
        let first = try await PDClusterTests.collect(try router.submit(ServingRequest(promptTokens: document, sampling: PDClusterTests.params(2))).1)
        #expect(first.tokens.count == 2)
        // Wherever it ran, that instance holds the only copy.
        var holder: ClusterRouter.Member?
        try await eventually("the document in one tree") {
            holder = router.memberList.first { m in router.scheduler.withLock { $0.view(of: m.id).count >= 6 } }
            return holder != nil
        }
        let leaver = try #require(holder)
        let (leaving, staying) = leaver.name == a.address.description ? (a, b) : (b, a)
        let survivor = try #require(router.memberList.first { $0.name == staying.address.description })

        leaving.process.terminate()
        try await eventually("the survivor holds the document", seconds: 30) {
            router.scheduler.withLock { $0.view(of: survivor.id).count } >= 6
        }
        try await eventually("the leaver exited", seconds: 30) { !leaving.process.isRunning }
        #expect(leaving.process.terminationStatus == 0, "a graceful exit")
        try await eventually("the leaver out of the routable members", seconds: 30) {
            router.memberList.filter(\.connected).map(\.name) == [staying.address.description]
        }
        let again = try await PDClusterTests.collect(try router.submit(ServingRequest(promptTokens: document + [7, 7], sampling: PDClusterTests.params(2))).1)
        #expect(again.cached >= 96, "served from the handed-over copy: \(again.cached) cached")
        #expect(again.tokens.count == 2)
    }
}
