import Foundation
import MemPool
import Scheduler
import Testing
@testable import Cluster
@testable import Engine
@testable import Router

/// The elastic pool across instances: evicted prefixes spill to a peer with room and come back
/// on demand, a graceful leave hands over what only the leaver caches, and a dead peer takes
/// only its own blocks.
@Suite("Peer tier across instances", .serialized)
struct PeerTierTests {
    /// 80 tokens: five 16-token blocks of the synthetic model.
    static let document: [Int32] = (0..<80).map { Int32(3 + ($0 * 41 + 7) % 250) }

    /// Two instances behind a router: a small one that runs the prompts, and a peer with room.
    final class Pair {
        let a: InstanceNode, b: InstanceNode
        let router: ClusterRouter
        let tasks: [Task<Void, any Error>]

        init(_ transport: DeploymentSpec.Transport, small: Int = 24, large: Int = 96) async throws {
            let base = PDClusterTests.base
            let listen = transport == .loopbackGRPC ? PeerAddress(host: "127.0.0.1", port: 0) : nil
            let nodes = try [small, large].map { blocks in
                let m = base.sibling(threads: 1)
                return InstanceNode(model: m, memPool: try m.makeMemPool(hotBlocks: blocks, peerShare: 0.5), role: .colocated,
                                    mode: .caching1, listen: listen)
            }
            (a, b) = (nodes[0], nodes[1])
            if transport == .inProcess { a.connect(b); b.connect(a) }
            tasks = nodes.map { n in Task { try await n.run() } }
            var config = ClusterRouter.Configuration()
            config.policy = .promptTree
            router = ClusterRouter(model: base.served, configuration: config)
            let clients = PeerClients()
            for n in nodes {
                if transport == .loopbackGRPC { _ = try await n.listeningAddress }
                await n.measureCosts()
                // What the start-up measured on a busy machine must not make the cost model
                // recompute what the test wants fetched: a link faster than any prefill.
                n.costs.withLock {
                    $0.transferBytesPerSecond = 1e12
                    $0.transferLatencySeconds = 0
                }
                let member: any RoutedInstance = transport == .inProcess
                    ? n : GRPCInstance(address: try await n.listeningAddress, clients: clients)
                try await router.add(member)
            }
            try await eventually("both members connected") { router.memberList.count == 2 && router.memberList.allSatisfy(\.connected) }
        }

        func stop() async {
            router.shutdown()
            a.shutdown()
            b.shutdown()
            for t in tasks { _ = try? await t.value }
        }

        /// Until nothing is held anywhere: every spill and transfer has ended.
        func waitIdle() async throws {
            for n in [a, b] {
                try await eventually("idle pool") {
                    let s = try await n.engine.perform { e in e.core.memPool.stats }
                    return s.hot.used == 0 && s.cold.used == 0
                }
                let valid = try await n.engine.perform { e -> Bool? in (try? e.core.memPool.validate()) != nil }
                #expect(valid, "pool invariants hold")
            }
        }
    }

    static func filler(_ k: Int) -> [Int32] { (0..<80).map { Int32(3 + ($0 * 13 + k * 71) % 250) } }

    static func spec(_ transport: DeploymentSpec.Transport) -> DeploymentSpec {
        var s = DeploymentSpec()
        s.colocated = 2
        s.threads = 2
        s.hotBlocks = 2 * 24
        s.peerShare = 0.5
        s.transport = transport
        s.router.policy = .promptTree
        return s
    }

    /// The bytes of the blocks a node caches for `tokens`, in order.
    static func cachedBytes(_ node: InstanceNode, _ tokens: [Int32]) async throws -> [[UInt8]] {
        try await node.engine.perform { e in
            let pool = e.core.memPool
            return pool.match(tokens).blocks.map { b in
                var buf = [UInt8](repeating: 0, count: pool.blockBytes)
                buf.withUnsafeMutableBytes { try? pool.readBlock(b, into: $0.baseAddress!) }
                return buf
            }
        }
    }

    /// Whole blocks of `tokens` a node caches, without touching their recency.
    static func cachedCount(_ node: InstanceNode, _ tokens: [Int32]) async throws -> Int {
        try await node.engine.perform { e in e.core.memPool.cachedBlockCount(tokens) }
    }

    static func run(_ node: InstanceNode, _ prompt: [Int32]) async throws {
        _ = try await PDClusterTests.collect(try node.engine.submit(ServingRequest(promptTokens: prompt, sampling: PDClusterTests.params(2))).1)
    }

    /// Until nothing is held anywhere: every spill and transfer has ended.
    static func waitIdle(_ d: RoutedDeployment) async throws {
        try await eventually("idle pools") {
            var idle = true
            for n in d.nodes {
                let s = try await n.engine.perform { e in e.core.memPool.stats }
                if s.hot.used != 0 || s.cold.used != 0 { idle = false }
            }
            return idle
        }
        for n in d.nodes { _ = try await n.engine.perform { e -> Bool? in (try? e.core.memPool.validate()) != nil ? true : false } }
    }

    @Test("an evicted prefix spills to the peer with room, byte for byte, and comes back cached",
          arguments: DeploymentSpec.Transport.allCases)
    func spillThenFetch(transport: DeploymentSpec.Transport) async throws {
        let reference = EngineService(model: PDClusterTests.base.sibling(threads: 1), memPool: try PDClusterTests.base.makeMemPool(hotBlocks: 96))
        let question: [Int32] = Self.document + [9, 8, 7, 6, 5]
        let expected = try await PDClusterTests.collect(try reference.submit(ServingRequest(promptTokens: question, sampling: PDClusterTests.params(4))).1)
        reference.shutdown()

        let pair = try await Pair(transport)
        let (a, b) = (pair.a, pair.b)
        try await Self.run(a, Self.document)
        let original = try await Self.cachedBytes(a, Self.document)
        #expect(original.count == 5)
        // Other prompts on the same instance push the document out of its pool.
        var k = 0
        while try await Self.cachedCount(a, Self.document) > 0 && k < 12 {
            try await Self.run(a, Self.filler(k))
            k += 1
        }
        #expect(try await Self.cachedCount(a, Self.document) == 0, "evicted from its instance")
        try await eventually("the document on the peer") { try await Self.cachedCount(b, Self.document) == 5 }
        #expect(try await Self.cachedBytes(b, Self.document) == original, "the peer holds the exact bytes")
        let guests = try await b.engine.perform { e in e.core.memPool.guestBlocks }
        #expect(guests >= 5)
        try await eventually("the spill counted") { a.transferStats.prefixesSpilled >= 1 }
        // The router sees the peer's copy: the next request finds it cached wherever it runs.
        try await eventually("the router's view") {
            let bID = pair.router.memberList.first { $0.name == b.name }!.id
            return pair.router.scheduler.withLock { $0.view(of: bID).count } >= 5
        }
        let got = try await PDClusterTests.collect(try pair.router.submit(ServingRequest(promptTokens: question, sampling: PDClusterTests.params(4))).1)
        #expect(got.tokens == expected.tokens, "same answer as an engine that computed everything")
        #expect(got.cached >= 80, "the spilled prefix counted as cached: \(got.cached)")
        try await pair.waitIdle()
        await pair.stop()
    }

    @Test("a graceful leave hands what only the leaver caches to a peer; requests go on")
    func gracefulLeave() async throws {
        let d = try await RoutedDeployment.start(model: PDClusterTests.base, spec: Self.spec(.inProcess))
        let (a, b) = (d.nodes[0], d.nodes[1])
        try await Self.run(a, Self.document)
        let original = try await Self.cachedBytes(a, Self.document)
        try await eventually("the router's view of the document") {
            let id = d.router.memberList.first { $0.name == a.name }!.id
            return d.router.scheduler.withLock { $0.view(of: id).count } >= 5
        }
        await a.drain(timeout: .seconds(20))
        #expect(try await Self.cachedBytes(b, Self.document) == original, "the only copy moved before the leave")
        #expect(d.router.memberList.first { $0.name == a.name }?.draining == true)
        // The leaver gets nothing new; the survivor serves the document from its cache.
        let before = a.engine.stats.running + a.engine.stats.waiting
        let got = try await PDClusterTests.collect(try d.submit(ServingRequest(promptTokens: Self.document + [5, 6], sampling: PDClusterTests.params(3))).1)
        #expect(got.cached >= 80 && got.tokens.count == 3)
        #expect(before == 0)
        try await Self.waitIdle(d)
        await d.stop()
    }

    @Test("a dead peer takes only its own blocks: the trees forget them, the rest serves on")
    func deadPeer() async throws {
        let pair = try await Pair(.inProcess)
        let (a, b) = (pair.a, pair.b)
        try await Self.run(a, Self.document)
        for k in 0..<12 where try await Self.cachedCount(a, Self.document) > 0 { try await Self.run(a, Self.filler(k)) }
        try await eventually("the spill") { try await Self.cachedCount(b, Self.document) == 5 }
        // The peer dies: the router drops it, and with it the only copy of the spilled document.
        b.shutdown()
        pair.router.remove(name: b.name)
        let aID = try #require(pair.router.memberList.first { $0.name == a.name }?.id)
        let own = try await a.engine.perform { e in e.core.memPool.cachedBlockEntries().count }
        #expect(pair.router.memberList.count == 1)
        #expect(pair.router.scheduler.withLock { $0.view(of: aID).count } == own, "the survivor's entries are intact")
        let got = try await PDClusterTests.collect(try pair.router.submit(ServingRequest(promptTokens: Self.document + [1, 2], sampling: PDClusterTests.params(3))).1)
        #expect(got.tokens.count == 3, "served, recomputing what died")
        try await eventually("the survivor idle") {
            let s = try await a.engine.perform { e in e.core.memPool.stats }
            return s.hot.used == 0 && s.cold.used == 0
        }
        await pair.stop()
    }
}
