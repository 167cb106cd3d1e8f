import Foundation
import Membership
import Scheduler
import Testing
@testable import Router
import Cluster
import Engine

/// Elastic membership through a real etcd: instance processes on distinct loopback addresses
/// register, a router discovers them, and an instance killed with SIGKILL leaves the trees
/// while the rest of the load is served.
@Suite("Elastic membership through etcd", .serialized)
struct ElasticMembershipTests {
    static func request(_ seed: Int, maxTokens: Int) -> ServingRequest {
        let prompt = (0..<60).map { Int32(3 + ($0 * 31 + seed * 97) % 250) }
        return ServingRequest(promptTokens: prompt, sampling: PDClusterTests.params(maxTokens), traceID: "t\(seed)")
    }

    @Test("instances join and leave at run time; a killed one leaves the trees and the rest is served")
    func joinKillJoin() async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.removeDirectory() }
        var config = ClusterRouter.Configuration()
        config.ttl = .seconds(1)
        // Membership is under test, not placement: turns spread the long requests over both
        // instances whatever each one measured of its own speed at start-up.
        config.policy = .roundRobin
        let router = ClusterRouter(model: ProcessModel.loaded.served, configuration: config)
        let feed = try MembershipFeed(router: router, endpoint: etcd.clientURL, prefix: "/test")
        let following = Task { try await feed.run() }
        defer { following.cancel() }
        let etcdArgs = ["--etcd", etcd.clientURL, "--etcd-prefix", "/test", "--etcd-ttl", "5"]

        let a = try await InstanceProcess.start(role: "colocated", mode: .caching1, model: ProcessModel.path,
                                                listen: "127.0.0.2:0", extra: etcdArgs)
        defer { a.stop() }
        try await eventually("the first instance joined") { router.memberList.filter(\.connected).count == 1 }
        let first = try await PDClusterTests.collect(try router.submit(Self.request(0, maxTokens: 4)).1)
        #expect(first.tokens.count == 4)

        let b = try await InstanceProcess.start(role: "colocated", mode: .caching1, model: ProcessModel.path,
                                                listen: "127.0.0.3:0", extra: etcdArgs)
        defer { b.stop() }
        try await eventually("the second instance joined") { router.memberList.filter(\.connected).count == 2 }

        // Long requests on both; then A dies mid-stream.
        let streams = try (1...6).map { try router.submit(Self.request($0, maxTokens: 400)).1 }
        let outcomes = Task {
            try await withThrowingTaskGroup(of: Result<Int, any Error>.self) { group in
                for s in streams {
                    group.addTask {
                        do { return .success(try await PDClusterTests.collect(s).tokens.count) } catch { return .failure(error) }
                    }
                }
                var all: [Result<Int, any Error>] = []
                for try await r in group { all.append(r) }
                return all
            }
        }
        try await eventually("both instances hold cached prefixes") {
            let ids = router.memberList.map(\.id)
            return router.scheduler.withLock { s in ids.allSatisfy { !s.view(of: $0).isEmpty } }
        }
        let aID = try #require(router.memberList.first { $0.name.hasPrefix("127.0.0.2") }?.id)
        a.kill()
        let results = try await outcomes.value
        let failed = results.compactMap(\.failure)
        #expect(failed.count < 6, "requests on the surviving instance finished")
        for e in failed {
            #expect(e is RemoteError, "a stream on the dead instance ends with the instance's failure: \(e)")
        }
        #expect(results.compactMap(\.success).allSatisfy { $0 == 400 })

        // Its entries leave the trees (lease expiry or the cache TTL), and it leaves the members.
        try await eventually("the dead instance left") { !router.memberList.contains { $0.id == aID } }
        #expect(router.scheduler.withLock { $0.view(of: aID).isEmpty })
        // New requests all go to the survivor.
        try await eventually("the survivor is connected") { router.memberList.filter(\.connected).count == 1 }
        for i in 10..<14 {
            let r = try await PDClusterTests.collect(try router.submit(Self.request(i, maxTokens: 3)).1)
            #expect(r.tokens.count == 3)
        }

        // A third instance joins and starts receiving requests.
        let c = try await InstanceProcess.start(role: "colocated", mode: .caching1, model: ProcessModel.path,
                                                listen: "127.0.0.4:0", extra: etcdArgs)
        defer { c.stop() }
        try await eventually("the third instance joined") { router.memberList.filter(\.connected).count == 2 }
        let burst = try (20..<28).map { try router.submit(Self.request($0, maxTokens: 30)).1 }
        for s in burst { #expect(try await PDClusterTests.collect(s).tokens.count == 30) }
        let cID = try #require(router.memberList.first { $0.name.hasPrefix("127.0.0.4") }?.id)
        try await eventually("the newcomer's tree fills") { !router.scheduler.withLock { $0.view(of: cID).isEmpty } }
        router.shutdown()
        await etcd.stop()
    }
}
