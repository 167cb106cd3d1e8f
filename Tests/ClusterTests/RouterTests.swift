import Foundation
import Synchronization
import MemPool
import Scheduler
import Testing
@testable import Cluster
@testable import Engine
@testable import Router

/// The global scheduler over instances of this process and over loopback gRPC: routing by
/// prompt trees, trees kept exact by events, and the transfer-or-recompute decision.
@Suite("Router over instances", .serialized)
struct RouterTests {
    static func spec(_ n: Int, policy: PolicyName, transport: DeploymentSpec.Transport = .inProcess, blocks: Int = 96,
                     cold: Int = 0) -> DeploymentSpec {
        var s = DeploymentSpec()
        s.colocated = n
        s.threads = n
        s.hotBlocks = n * blocks
        s.coldBlocks = n * cold
        s.transport = transport
        s.router.policy = policy
        return s
    }

    /// Conversations `0..<count`, each four turns, one after another; per turn its cached tokens.
    static func conversations(_ backend: any InferenceBackend, count: Int,
                              settle: () async throws -> Void = {}) async throws -> [[(tokens: [Int32], cached: Int)]] {
        var all: [[(tokens: [Int32], cached: Int)]] = []
        for c in 0..<count {
            var history: [Int32] = (0..<45).map { Int32(3 + ($0 * 37 + c * 101) % 250) }
            var turns: [(tokens: [Int32], cached: Int)] = []
            for turn in 0..<4 {
                try await settle()
                let r = try await PDClusterTests.collect(try backend.submit(ServingRequest(promptTokens: history, sampling: PDClusterTests.params(6))).1)
                turns.append((r.tokens, r.cached))
                history += r.tokens + (0..<11).map { Int32(20 + $0 * 3 + turn + c) }
            }
            all.append(turns)
        }
        return all
    }

    @Test("prompt-tree routing keeps each conversation where its history is; round-robin needs transfers for it")
    func promptTreeFollowsHistory() async throws {
        let single = EngineService(model: PDClusterTests.base.sibling(threads: 1), memPool: try PDClusterTests.base.makeMemPool(hotBlocks: 96))
        let expected = try await Self.conversations(single, count: 3)
        single.shutdown()
        var pushedByPolicy: [PolicyName: Int] = [:]
        var profiles = ""
        for policy in [PolicyName.promptTree, .roundRobin] {
            let d = try await RoutedDeployment.start(model: PDClusterTests.base, spec: Self.spec(3, policy: policy))
            // Each turn waits for the previous one to show as ended in the router's view: a load
            // report that still counts it running (late on a loaded machine) may rightly send
            // the turn elsewhere.
            let got = try await Self.conversations(d, count: 3) { try await Self.idle(d.router) }
            #expect(got.map { $0.map(\.tokens) } == expected.map { $0.map(\.tokens) }, "\(policy): same answers as one engine")
            for conv in got { #expect(conv.dropFirst().allSatisfy { $0.cached > 0 }, "\(policy): every later turn finds its history") }
            // Prompt-tree routing finds each history where it is; round-robin finds it only
            // because the cost model has the holder push it to the instance it picked.
            pushedByPolicy[policy] = d.nodes.map(\.transferStats.blocksPushed).reduce(0, +)
            let prefill = d.nodes.map { $0.costs.withLock { $0.prefill } }
            #expect(!prefill[0].isEmpty && prefill.allSatisfy { $0 == prefill[0] }, "siblings share one prefill measurement")
            if policy == .promptTree { profiles = d.nodes.map { "\($0.costs.withLock { $0 })" }.joined(separator: "; ") }
            await d.stop()
        }
        #expect(pushedByPolicy[.promptTree] == 0, "measured costs: \(profiles)")
        #expect(pushedByPolicy[.roundRobin]! > 0)
    }

    /// Returns once every member's last load report shows nothing running or waiting (bounded).
    static func idle(_ router: ClusterRouter) async throws {
        try await eventually("the router's load reports show every instance idle", seconds: 30) {
            router.memberList.allSatisfy { $0.description.stats.running + $0.description.stats.waiting == 0 }
        }
    }

    /// The router's view of an instance, and the instance's own tree, as hash -> tier.
    static func views(_ d: RoutedDeployment) async throws -> [(router: [PrefixHash: BlockTier], own: [PrefixHash: BlockTier])] {
        var out: [(router: [PrefixHash: BlockTier], own: [PrefixHash: BlockTier])] = []
        for m in d.router.memberList {
            guard let node = d.nodes.first(where: { $0.name == m.name || $0.name == m.description.name }) else { continue }
            let own = try await node.engine.perform { e in e.core.memPool.cachedBlockEntries() }
            let routerView = d.router.scheduler.withLock { $0.view(of: m.id) }
            out.append((routerView, Dictionary(own.map { ($0.hash, $0.tier) }, uniquingKeysWith: { a, _ in a })))
        }
        return out
    }

    @Test("the router's trees equal every instance's own tree after evictions, swaps and deletes",
          arguments: DeploymentSpec.Transport.allCases)
    func treesAreExact(transport: DeploymentSpec.Transport) async throws {
        // Small pools with a cold tier: the workload evicts, demotes and swaps back in.
        let d = try await RoutedDeployment.start(model: PDClusterTests.base,
                                                 spec: Self.spec(2, policy: .roundRobin, transport: transport, blocks: 20, cold: 12))
        var random = RandomSource(seed: 77)
        let prefixes: [[Int32]] = (0..<4).map { (p: Int) -> [Int32] in
            (0..<32).map { (i: Int) -> Int32 in Int32(3 + (i * 29 + p * 53) % 250) }
        }
        for round in 0..<3 {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<12 {
                    let prefix = prefixes[Int(random.next() % 4)]
                    let tail = (0..<Int(16 + random.next() % 40)).map { _ in Int32(3 + random.next() % 250) }
                    let stream = try d.submit(ServingRequest(promptTokens: prefix + tail, sampling: PDClusterTests.params(4))).1
                    group.addTask { _ = try await PDClusterTests.collect(stream) }
                }
                try await group.waitForAll()
            }
            // Deletes, as an operator would: the event reaches the router like the others.
            for node in d.nodes {
                let victim = prefixes[round]
                _ = try await node.engine.perform { e -> Bool? in _ = e.core.memPool.delete(tokens: victim); return true }
            }
            // Quiescent: nothing runs; the router has every event once the views agree.
            var agree = false
            for _ in 0..<400 {
                let v = try await Self.views(d)
                if v.count == 2 && v.allSatisfy({ $0.router == $0.own }) { agree = true; break }
                try await Task.sleep(for: .milliseconds(5))
            }
            let v = try await Self.views(d)
            let sizes = v.map { ($0.router.count, $0.own.count) }
            #expect(agree, "round \(round): router view vs own tree sizes \(sizes)")
            #expect(v.contains { !$0.own.isEmpty }, "something is cached")
        }
        let churn = d.nodes.map { $0.engine.stats.evictions + $0.engine.stats.demotions }.reduce(0, +)
        #expect(churn > 0, "the workload evicted or demoted blocks")
        await d.stop()
    }

    @Test("transfer or recompute: a fast link moves the holder's blocks, a slow one recomputes")
    func transferOrRecompute() async throws {
        for slow in [false, true] {
            let base = PDClusterTests.base
            let nodes = try (0..<2).map { _ in
                let m = base.sibling(threads: 1)
                return InstanceNode(model: m, memPool: try m.makeMemPool(hotBlocks: 96), role: .colocated, mode: .caching1, listen: nil)
            }
            for a in nodes { for b in nodes where a !== b { a.connect(b) } }
            let tasks = nodes.map { n in Task { try await n.run() } }
            for n in nodes {
                await n.measureCosts()
                if slow { n.costs.withLock { $0.transferBytesPerSecond = 1 } }
            }
            var config = ClusterRouter.Configuration()
            config.policy = .roundRobin
            let router = ClusterRouter(model: base.served, configuration: config)
            for n in nodes { try await router.add(n) }
            for _ in 0..<200 where !router.memberList.allSatisfy(\.connected) { try await Task.sleep(for: .milliseconds(5)) }
            let prompt: [Int32] = (0..<200).map { Int32(3 + ($0 * 41) % 250) }
            let first = try await PDClusterTests.collect(try router.submit(ServingRequest(promptTokens: prompt, sampling: PDClusterTests.params(2))).1)
            #expect(first.cached == 0)
            // Let the holder's events reach the router before the next decision.
            for _ in 0..<400 {
                let members = router.memberList
                if router.scheduler.withLock({ s in members.contains { !s.view(of: $0.id).isEmpty } }) { break }
                try await Task.sleep(for: .milliseconds(5))
            }
            // Round robin sends the next request to the other instance, which holds nothing.
            let second = try await PDClusterTests.collect(try router.submit(ServingRequest(promptTokens: prompt + [7, 8, 9], sampling: PDClusterTests.params(2))).1)
            let pushed = nodes.map(\.transferStats.blocksPushed).reduce(0, +)
            if slow {
                #expect(second.cached == 0, "recomputed")
                #expect(pushed == 0)
            } else {
                #expect(second.cached >= 176, "the blocks came from the holder: \(second.cached)")
                #expect(pushed >= 11)
            }
            #expect(first.tokens.count == 2 && second.tokens.count == 2)
            router.shutdown()
            for n in nodes { n.shutdown() }
            for t in tasks { _ = try? await t.value }
        }
    }

    @Test("the debug explanation lists every candidate and the choice")
    func explain() async throws {
        let d = try await RoutedDeployment.start(model: PDClusterTests.base, spec: Self.spec(2, policy: .promptTree))
        let prompt: [Int32] = (0..<80).map { Int32(3 + ($0 * 7) % 250) }
        _ = try await PDClusterTests.collect(try d.submit(ServingRequest(promptTokens: prompt, sampling: PDClusterTests.params(2))).1)
        let json = try JSONSerialization.jsonObject(with: d.explainRoute(ServingRequest(promptTokens: prompt, sampling: .greedy))) as? [String: Any]
        let entry = try #require(json?["entry"] as? [String: Any])
        #expect(entry["chosen"] != nil)
        #expect((json?["members"] as? [Any])?.count == 2)
        let trees = try JSONSerialization.jsonObject(with: d.treeSummary()) as? [String: Any]
        #expect(trees?["trees"] != nil)
        await d.stop()
    }
}

extension GlobalScheduler {
    /// What the router believes `id` caches: hash -> tier.
    func view(of id: InstanceID) -> [PrefixHash: BlockTier] { kind(of: id).map { tree($0).view(of: id) } ?? [:] }
}

/// An instance that accepts the router's watch but fails every request before any output (as
/// one that died a moment ago would).
final class FailingInstance: RoutedInstance {
    let name = "failing:1"
    let template: InstanceDescription
    let calls = Mutex(0)
    init(like d: InstanceDescription) { template = d }

    func describe() async throws -> InstanceDescription {
        var d = template
        d.name = name
        return d
    }

    func generate(_ request: ServingRequest, decodePeer: String?) -> AsyncThrowingStream<RequestOutput, any Error> {
        calls.withLock { $0 += 1 }
        return AsyncThrowingStream { $0.finish(throwing: RemoteError.peerFailed(peer: self.name, reason: "connection refused")) }
    }

    func watchCache() -> AsyncThrowingStream<CacheUpdate, any Error> {
        let (stream, c) = AsyncThrowingStream<CacheUpdate, any Error>.makeStream()
        c.yield(.snapshot(seq: 0, entries: []))
        return stream
    }

    func pushPrefix(tokens: [Int32], blocks: Int, to destination: String, traceID: String) async throws -> (cached: Int, moved: Int) {
        throw RemoteError.peerFailed(peer: name, reason: "connection refused")
    }

    func spill(hashes: [PrefixHash], to destination: String, traceID: String) async throws -> SpillResult {
        throw RemoteError.peerFailed(peer: name, reason: "connection refused")
    }

    func drained() async throws {}
}

@Suite("Router retries")
struct RouterRetryTests {
    @Test("a request whose instance fails before its first token is served by another instance")
    func retriesBeforeFirstToken() async throws {
        let m = PDClusterTests.base.sibling(threads: 1)
        let node = InstanceNode(model: m, memPool: try m.makeMemPool(hotBlocks: 96), role: .colocated, mode: .caching1, listen: nil)
        let task = Task { try await node.run() }
        var config = ClusterRouter.Configuration()
        config.policy = .roundRobin
        let router = ClusterRouter(model: PDClusterTests.base.served, configuration: config)
        let failing = FailingInstance(like: try await node.describe())
        try await router.add(failing)
        try await router.add(node)
        for i in 0..<4 {
            let prompt = (0..<30).map { Int32(3 + ($0 * 11 + i) % 250) }
            let r = try await PDClusterTests.collect(try router.submit(ServingRequest(promptTokens: prompt, sampling: PDClusterTests.params(3))).1)
            #expect(r.tokens.count == 3)
        }
        #expect(failing.calls.withLock { $0 } > 0, "round robin tried the failing instance")
        router.shutdown()
        node.shutdown()
        _ = try? await task.value
    }
}
