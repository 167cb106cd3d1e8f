import Foundation
import MemPool
import Scheduler
import Testing

@Suite("Routing policies")
struct PolicyTests {
    func scheduler(_ policy: PolicyName, instances: Int, costModel: CostModel = CostModel(enabled: false),
                   kind: InstanceKind = .colocated) -> (GlobalScheduler, [InstanceID]) {
        let s = GlobalScheduler(policy: policy, costModel: costModel)
        let ids = (0..<instances).map { _ in s.join(kind: kind, profile: profile()) }
        for id in ids { s.updateLoad(id, InstanceLoad(freeBlocks: 1000, totalBlocks: 1000), now: 0) }
        return (s, ids)
    }

    /// A prompt of `blocks` 16-token blocks of family `f` plus a partial block.
    func request(_ f: Int, blocks: Int, tail: Int = 0) -> (hashes: [PrefixHash], tokens: Int) {
        (chainHashes(f, blocks: blocks, blockTokens: 16), blocks * 16 + tail)
    }

    @Test func roundRobinCycles() {
        let (s, ids) = scheduler(.roundRobin, instances: 3)
        let r = request(1, blocks: 4)
        let picks = (0..<6).map { _ in s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, now: 0).chosen }
        #expect(picks == [ids[0], ids[1], ids[2], ids[0], ids[1], ids[2]])
        s.leave(ids[1])
        let more = (0..<4).map { _ in s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, now: 0).chosen }
        #expect(more == [ids[0], ids[2], ids[0], ids[2]])
    }

    @Test func leastLoadedTakesTheFewestRequestsAndSpreadsBursts() {
        let (s, ids) = scheduler(.leastLoaded, instances: 3)
        s.updateLoad(ids[0], InstanceLoad(running: 4, waiting: 1, freeBlocks: 1000, totalBlocks: 1000), now: 1)
        s.updateLoad(ids[1], InstanceLoad(running: 1, waiting: 0, freeBlocks: 1000, totalBlocks: 1000), now: 1)
        s.updateLoad(ids[2], InstanceLoad(running: 3, waiting: 0, freeBlocks: 1000, totalBlocks: 1000), now: 1)
        let r = request(1, blocks: 4)
        let d = s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, now: 2)
        #expect(d.chosen == ids[1] && d.scoreUnit == "requests")
        #expect(d.candidates.map(\.score) == [5, 1, 3])
        // Routed requests count until the next report: a burst does not all land on one.
        let burst = (0..<4).map { _ in s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, now: 3).chosen! }
        #expect(burst == [ids[1], ids[2], ids[1], ids[2]])
    }

    @Test func sessionsStickAndReHomeWhenTheirInstanceLeaves() {
        let (s, ids) = scheduler(.session, instances: 3)
        let r = request(1, blocks: 4)
        let home = s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, session: "alice", now: 1).chosen!
        // However busy the home gets, alice stays.
        s.updateLoad(home, InstanceLoad(running: 40, waiting: 9, freeBlocks: 10, totalBlocks: 1000), now: 2)
        for _ in 0..<5 {
            let d = s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, session: "alice", now: 3)
            #expect(d.chosen == home && d.reason.contains("stays"))
        }
        let bob = s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, session: "bob", now: 4).chosen!
        #expect(bob != home)
        s.leave(home)
        let moved = s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, session: "alice", now: 5)
        #expect(moved.chosen != nil && moved.chosen != home && moved.reason.contains("re-homed"))
        let again = s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, session: "alice", now: 6)
        #expect(again.chosen == moved.chosen)
        let anonymous = s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, now: 7)
        #expect(anonymous.chosen != nil && ids.contains(anonymous.chosen!))
    }

    @Test func sessionHomesAreBounded() {
        var p = SessionPolicy(capacity: 8)
        let c = (0..<2).map { Candidate(instance: InstanceID(UInt32($0)), load: InstanceLoad(), profile: profile()) }
        for k in 0..<20 { _ = p.choose(RoutingRequest(promptTokens: 16, promptBlocks: 1, session: "s\(k)", now: UInt64(k)), candidates: c) }
        #expect(p.home(of: "s19") != nil && p.home(of: "s0") == nil)
    }

    @Test func promptTreePicksTheLongestHolderUnderBalancedLoad() {
        let (s, ids) = scheduler(.promptTree, instances: 4)
        let r = request(7, blocks: 40, tail: 5)
        s.tree(.colocated).apply(inserted(r.hashes, 0, 40), from: ids[2])
        s.tree(.colocated).apply(inserted(r.hashes, 0, 12), from: ids[1])
        for id in ids { s.updateLoad(id, InstanceLoad(running: 2, waiting: 1, queuedPrefillTokens: 100, freeBlocks: 500, totalBlocks: 1000), now: 1) }
        let d = s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, now: 2)
        #expect(d.chosen == ids[2] && d.policy == .promptTree && d.scoreUnit == "seconds")
        #expect(d.candidates.map(\.matchedTokens) == [0, 192, 640, 0])
        #expect(d.candidates.map(\.hotTokens) == [0, 192, 640, 0])
        #expect(d.candidates[2].score < d.candidates[1].score && d.candidates[1].score < d.candidates[0].score)
        #expect(d.reason.contains("\(ids[2])") && d.transfer == nil)
        // The holder with a longer queue still wins while its cache saves more than the wait.
        s.updateLoad(ids[2], InstanceLoad(running: 20, waiting: 2, queuedPrefillTokens: 200, freeBlocks: 500, totalBlocks: 1000), now: 3)
        #expect(s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, now: 4).chosen == ids[2])
    }

    @Test func promptTreeFallsBackToLeastLoadedPastBothThresholds() {
        let (s, ids) = scheduler(.promptTree, instances: 3)
        let r = request(7, blocks: 40)
        s.tree(.colocated).apply(inserted(r.hashes, 0, 40), from: ids[0])
        // 47 vs 10 requests: past the absolute threshold (32) and the relative one (1.5x).
        s.updateLoad(ids[0], InstanceLoad(running: 45, waiting: 2, freeBlocks: 900, totalBlocks: 1000), now: 1)
        s.updateLoad(ids[1], InstanceLoad(running: 9, waiting: 1, freeBlocks: 900, totalBlocks: 1000), now: 1)
        s.updateLoad(ids[2], InstanceLoad(running: 12, freeBlocks: 900, totalBlocks: 1000), now: 1)
        let d = s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, now: 2)
        #expect(d.chosen == ids[1] && d.reason.contains("unbalanced"))
        // Past the absolute threshold but not the relative one: the score decides.
        for (k, id) in ids.enumerated() {
            s.updateLoad(id, InstanceLoad(running: k == 0 ? 100 : 70, freeBlocks: 900, totalBlocks: 1000), now: 3)
        }
        let e = s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, now: 4)
        #expect(!e.reason.contains("unbalanced"))
    }

    /// A new prefix goes where it evicts nothing, even to a slightly busier instance; with
    /// evictions weighed at zero the shorter queue wins again.
    @Test func promptTreeKeepsOthersCachesWhenItCan() {
        let (s, ids) = scheduler(.promptTree, instances: 2)
        let r = request(11, blocks: 50)
        // ids[0]: every free block holds a cached prefix; ids[1]: 100 prefill tokens more queued, memory unused.
        s.updateLoad(ids[0], InstanceLoad(running: 1, freeBlocks: 900, unusedBlocks: 10, totalBlocks: 1000), now: 1)
        s.updateLoad(ids[1], InstanceLoad(running: 1, queuedPrefillTokens: 100, freeBlocks: 900, totalBlocks: 1000), now: 1)
        let d = s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, now: 2)
        #expect(d.chosen == ids[1], "\(d.reason)")
        #expect(d.candidates[0].load.unusedBlocks == 10 && d.candidates[1].load.unusedBlocks == 900)

        var config = PromptTreePolicy.Configuration()
        config.evictionWeight = 0
        var p = PromptTreePolicy(configuration: config, costModel: CostModel(enabled: false))
        let c = d.candidates.map { Candidate(instance: $0.instance, load: $0.load, profile: profile()) }
        let e = p.choose(RoutingRequest(promptTokens: r.tokens, promptBlocks: r.hashes.count, now: 3), candidates: c)
        #expect(e.index == 0)
    }

    /// A burst of requests sharing a new prefix: the first one's instance is computing it, so
    /// the rest follow it there instead of each prefilling a copy elsewhere.
    @Test func promptTreeFollowsAPrefixBeingComputed() throws {
        let (s, ids) = scheduler(.promptTree, instances: 4)
        let document = chainHashes(21, blocks: 48, blockTokens: 16)
        let first = s.route(hashes: document, promptTokens: 48 * 16 + 8, kind: .colocated, now: 1)
        let home = try #require(first.chosen)
        #expect(s.inFlightEntries == 48)
        var followers: [InstanceID] = []
        for k in 0..<3 {
            let hashes = document + chainHashes(100 + k, blocks: 2, blockTokens: 16)
            let d = s.route(hashes: hashes, promptTokens: hashes.count * 16, kind: .colocated, now: 2)
            followers.append(d.chosen!)
            #expect(d.candidates.first { $0.instance == home }?.inFlightTokens == 48 * 16)
            #expect(d.reason.contains("being computed"), "\(d.reason)")
        }
        #expect(followers.allSatisfy { $0 == home }, "\(followers) vs \(home)")
        // Dry runs (the debug endpoint) record nothing.
        let before = s.inFlightEntries
        _ = s.route(hashes: document, promptTokens: 48 * 16, kind: .colocated, now: 3, record: false)
        #expect(s.inFlightEntries == before)
        // Once the prefills produced output, the instances' own trees take over.
        s.computed(home, hashes: document)
        for k in 0..<3 { s.computed(home, hashes: document + chainHashes(100 + k, blocks: 2, blockTokens: 16)) }
        #expect(s.inFlightEntries == 0)
        let later = s.route(hashes: document, promptTokens: 48 * 16, kind: .colocated, now: 4, record: false)
        #expect(later.candidates.allSatisfy { $0.inFlightTokens == 0 })
        _ = ids
    }

    /// One hot shared prefix, many requests: the holder takes the first ones, and once its
    /// queue outweighs what its cache saves others take requests (and cache the prefix too).
    @Test func aHotPrefixDoesNotMakeAHotSpot() {
        let (s, ids) = scheduler(.promptTree, instances: 4)
        let prefix = chainHashes(3, blocks: 64, blockTokens: 16)
        s.tree(.colocated).apply(inserted(prefix, 0, 64), from: ids[0])
        var counts: [InstanceID: Int] = [:]
        var holders: Set<InstanceID> = [ids[0]]
        var first: InstanceID?
        for k in 0..<64 {
            let tail = chainHashes(10_000 + k, blocks: 4, blockTokens: 16)
            let hashes = prefix + tail
            let d = s.route(hashes: hashes, promptTokens: hashes.count * 16, kind: .colocated, now: UInt64(k))
            let c = d.chosen!
            if first == nil { first = c }
            counts[c, default: 0] += 1
            // Its prefill caches the prompt (the pool's events would say so).
            if holders.insert(c).inserted { s.tree(.colocated).apply(inserted(prefix, 0, 64), from: c) }
        }
        #expect(first == ids[0])
        #expect(counts.count == 4, "\(counts)")
        #expect(counts.values.max()! <= 24, "\(counts)")
        // The queues the policy predicted are close to even.
        let queued = s.route(hashes: prefix, promptTokens: 64 * 16, kind: .colocated, now: 99).candidates.map(\.load.queuedPrefillTokens)
        #expect(queued.max()! - queued.min()! <= 4 * 64 + 1024, "\(queued)")
    }

    @Test func routesOnlyToTheRequestedKind() {
        let s = GlobalScheduler(policy: .promptTree)
        let p = s.join(kind: .prefill, profile: profile())
        let d1 = s.join(kind: .decode, profile: profile())
        let d2 = s.join(kind: .decode, profile: profile())
        let r = request(5, blocks: 8)
        s.resync(d2, entries: (0..<8).map { CacheEntry(parent: $0 == 0 ? .root : r.hashes[$0 - 1], hash: r.hashes[$0], tier: .hot) },
                 seq: 0, now: 0)
        let d = s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .decode, now: 1)
        #expect(d.candidates.map(\.instance) == [d1, d2] && d.chosen == d2)
        #expect(s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .prefill, now: 1).chosen == p)
        let none = s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, now: 1)
        #expect(none.chosen == nil && none.candidates.isEmpty)
        #expect(s.treeSizes.kinds.first { $0.kind == .decode }?.blocks == 8)
        #expect(s.treeSizes.instances.first { $0.instance == d2 }?.blocks == 8)
    }

    @Test func candidatesFollowMembershipAndLoadReports() {
        let s = GlobalScheduler(policy: .leastLoaded)
        let kinds: [InstanceKind] = [.decode, .colocated, .decode, .colocated, .decode]
        let ids = kinds.map { s.join(kind: $0, profile: profile()) }
        s.leave(ids[0])
        s.leave(ids[3])
        for (k, id) in ids.enumerated() where k != 0 && k != 3 {
            s.updateLoad(id, InstanceLoad(running: 10 * k, freeBlocks: 100, totalBlocks: 100), now: 1)
        }
        let r = request(2, blocks: 2)
        let d = s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .decode, now: 2)
        #expect(d.candidates.map(\.instance) == [ids[2], ids[4]] && d.candidates.map(\.load.running) == [20, 40])
        #expect(d.chosen == ids[2])
        // The routed request shows as pending load until the next report.
        let e = s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .decode, now: 3)
        #expect(e.candidates[0].load.waiting == 1 && e.candidates[0].load.queuedPrefillTokens == 32)
        s.updateLoad(ids[2], InstanceLoad(running: 20, freeBlocks: 100, totalBlocks: 100), now: 4)
        let f = s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, now: 5)
        #expect(f.candidates.map(\.instance) == [ids[1]] && f.candidates[0].load.running == 10)
        #expect(s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .decode, now: 6).candidates[0].load.waiting == 0)
    }

    @Test func decisionsEncodeWithSnakeCaseKeys() throws {
        let (s, ids) = scheduler(.promptTree, instances: 2, costModel: CostModel())
        let r = request(9, blocks: 64)
        s.tree(.colocated).apply(inserted(r.hashes, 0, 64), from: ids[0])
        s.updateLoad(ids[0], InstanceLoad(running: 30, waiting: 10, queuedPrefillTokens: 20_000, freeBlocks: 900, totalBlocks: 1000), now: 1)
        let d = s.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, now: 2)
        let json = String(decoding: try JSONEncoder().encode(d), as: UTF8.self)
        for key in ["\"chosen\"", "\"prompt_tokens\"", "\"score_unit\"", "\"matched_tokens\"", "\"hot_tokens\"",
                    "\"queued_prefill_tokens\"", "\"transfer\"", "\"from_block\"", "\"predicted_recompute_s\""] {
            #expect(json.contains(key), "\(key) in \(json)")
        }
        #expect(try JSONDecoder().decode(RoutingDecision.self, from: Data(json.utf8)) == d)
        #expect(PolicyName.allCases.map(\.rawValue) == ["round-robin", "least-loaded", "session", "prompt-tree"])
        for name in PolicyName.allCases { #expect(name.makePolicy().name == name) }
    }
}
