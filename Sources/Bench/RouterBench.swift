import Foundation
import MemPool
import Scheduler

/// Figures of ``RouterBench/run(_:progress:)``. Field names are the JSON keys.
public struct RouterBenchResult: Codable, Sendable {
    public struct Latency: Codable, Sendable {
        public var p50: Double
        public var p99: Double
    }

    /// Routing decision latency (``GlobalScheduler/route(hashes:promptTokens:kind:session:now:)``:
    /// match, score every candidate, cost model, decision record), microseconds, keyed by the
    /// number of instances.
    public var decision_us: [String: Latency]
    /// Bytes the prompt tree reserves per cached block per holder: the largest over the
    /// configurations, from the tree's own count of its allocations.
    public var bytes_per_cached_block: Double
    /// Block-events per second through ``GlobalScheduler/ingest(_:seq:from:now:)``: building the
    /// trees, then churn (evictions, swaps, new prompts), every configuration together.
    public var events_per_s: Double
    /// `bytes_per_cached_block` per configuration.
    public var bytes_per_cached_block_by_instances: [String: Double]
    /// Cached blocks summed over instances (block-holder pairs), per configuration.
    public var cached_blocks: [String: Int]
    /// Distinct cached prefixes, per configuration.
    public var distinct_blocks: [String: Int]
    /// Mean prefix hit of the routed prompts on the chosen instance, per configuration.
    public var routed_hit_rate: [String: Double]
    /// Timed decisions per configuration.
    public var decisions: Int
    public var block_tokens: Int
    public var total_seconds: Double
}

/// The global scheduler's costs with many simulated instances: a realistic cache spread (shared
/// system prompts and documents of popular families on many instances, multi-turn conversations
/// on one each, prompts of a few hundred to a few thousand tokens) fed as MemPool events, then
/// routing decisions for a mix of next turns, new conversations and unrelated prompts.
public enum RouterBench {
    public struct Workload: Sendable {
        public var instances: [Int] = [8, 64, 512]
        /// Cached blocks summed over instances.
        public var cachedBlocks = 1_000_000
        public var decisions = 20_000
        /// Routed requests whose prefill has not started, at any time.
        public var inFlight = 256
        public var seed: UInt64 = 0x5C4E_D17E
        public init() {}
    }

    static let bt = 16

    public static func run(_ w: Workload = Workload(), progress: (String) -> Void = { _ in }) -> RouterBenchResult {
        let start = ContinuousClock.now
        var latency: [String: RouterBenchResult.Latency] = [:]
        var bytes: [String: Double] = [:], cached: [String: Int] = [:]
        var distinct: [String: Int] = [:], hitRate: [String: Double] = [:]
        var events = 0, ingestSeconds = 0.0
        for n in w.instances {
            let r = runConfiguration(instances: n, w, progress: progress)
            let key = String(n)
            latency[key] = .init(p50: percentile(r.latencies, 0.5), p99: percentile(r.latencies, 0.99))
            bytes[key] = r.bytesPerHolder
            cached[key] = r.holders
            distinct[key] = r.distinct
            hitRate[key] = r.hitRate
            events += r.blockEvents
            ingestSeconds += r.ingestSeconds
        }
        return RouterBenchResult(
            decision_us: latency, bytes_per_cached_block: bytes.values.max() ?? 0,
            events_per_s: Double(events) / max(ingestSeconds, 1e-9),
            bytes_per_cached_block_by_instances: bytes,
            cached_blocks: cached, distinct_blocks: distinct, routed_hit_rate: hitRate, decisions: w.decisions,
            block_tokens: bt, total_seconds: MemPoolBench.seconds(ContinuousClock.now - start))
    }

    struct ConfigurationResult {
        var latencies: [Double]
        var bytesPerHolder: Double
        var holders: Int
        var distinct: Int
        var hitRate: Double
        var blockEvents: Int
        var ingestSeconds: Double
    }

    /// Hash chains built from random tokens, block by block.
    struct Chains {
        var rng: BenchRNG
        var block = [Int32](repeating: 0, count: RouterBench.bt)

        mutating func extend(_ chain: [PrefixHash], by blocks: Int) -> [PrefixHash] {
            var out = chain
            out.reserveCapacity(chain.count + blocks)
            var h = chain.last ?? .root
            for _ in 0..<blocks {
                for k in 0..<block.count { block[k] = Int32(truncatingIfNeeded: rng.next() % 32_000) }
                h = block.withUnsafeBufferPointer { h.extended(with: $0) }
                out.append(h)
            }
            return out
        }
    }

    static func runConfiguration(instances n: Int, _ w: Workload, progress: (String) -> Void) -> ConfigurationResult {
        var rng = BenchRNG(state: w.seed &+ UInt64(n))
        var chains = Chains(rng: BenchRNG(state: w.seed ^ 0xC4A1_5EED &+ UInt64(n)))
        // Families: shared heads of 8–128 blocks, Zipf-like popularity.
        let families = (0..<128).map { _ in chains.extend([], by: 8 + rng.below(121)) }
        func family() -> Int { min(families.count - 1, Int(Double(families.count) * pow(Double(rng.below(1 << 20) + 1) / Double(1 << 20), 2.5))) }

        // Each instance's conversations until its share of the cached blocks is reached; each
        // turn is one `inserted` event of the blocks the instance lacked.
        let share = w.cachedBlocks / n
        var conversations: [(instance: Int, chain: [PrefixHash])] = []
        var perInstance: [[MemPoolEvent]] = Array(repeating: [], count: n)
        var holders = 0
        for i in 0..<n {
            var heads = Set<Int>()
            var have = 0
            while have < share {
                let f = family()
                var chain = families[f]
                var from = heads.contains(f) ? chain.count : 0
                for _ in 0..<(1 + rng.below(4)) {
                    let add = min(256 - chain.count, 4 + rng.below(61))
                    if add > 0 { chain = chains.extend(chain, by: add) }
                    guard chain.count > from else { break }
                    perInstance[i].append(.inserted(parent: from == 0 ? .root : chain[from - 1], hashes: Array(chain[from...]),
                                                    tokens: [], tier: .hot))
                    have += chain.count - from
                    from = chain.count
                }
                heads.insert(f)
                conversations.append((i, chain))
            }
            holders += have
        }

        // The tree is built from events (timed).
        let scheduler = GlobalScheduler(policy: .promptTree, costModel: CostModel(), expectedBlocks: holders)
        let prof = InstanceProfile(blockTokens: bt, blockBytes: 128 << 10,
                                   prefillSamples: [PrefillSample(tokens: 64, seconds: 0.04), PrefillSample(tokens: 512, seconds: 0.36)],
                                   transferBytesPerSecond: 4e9, transferLatencySeconds: 5e-5)
        let ids = (0..<n).map { _ in scheduler.join(kind: .colocated, profile: prof, now: 0) }
        for id in ids { scheduler.resync(id, entries: [], seq: 0, now: 0) }
        var seqs = [UInt64](repeating: 0, count: n)
        var blockEvents = 0
        var ingest = Duration.zero
        // Interleaved across instances, as feeds arrive.
        let build: [(Int, MemPoolEvent)] = {
            var out: [(Int, MemPoolEvent)] = []
            out.reserveCapacity(perInstance.reduce(0) { $0 + $1.count })
            let longest = perInstance.map(\.count).max() ?? 0
            for k in 0..<longest { for i in 0..<n where k < perInstance[i].count { out.append((i, perInstance[i][k])) } }
            return out
        }()
        perInstance = []
        let t0 = ContinuousClock.now
        for (i, e) in build {
            seqs[i] += 1
            _ = scheduler.ingest(e, seq: seqs[i], from: ids[i], now: 1)
        }
        ingest += ContinuousClock.now - t0
        blockEvents += build.reduce(0) { $0 + $1.1.blockCount }
        let tree = scheduler.tree(.colocated)
        let bytesPerHolder = Double(tree.approximateBytes) / Double(max(1, tree.holderCount))
        let distinct = tree.blockCount, holderCount = tree.holderCount
        progress("\(n) instances: \(holderCount) cached blocks (\(distinct) distinct), \(String(format: "%.1f", bytesPerHolder)) bytes each")

        // Churn: conversations lose their tails to eviction, blocks go cold and back, new
        // conversations arrive; about a fifth of the cache turns over.
        var churn: [(Int, MemPoolEvent)] = []
        var churned = 0
        while churned < holderCount / 5 {
            let c = rng.below(conversations.count)
            let (i, chain) = conversations[c]
            let head = families.first { chain.starts(with: $0) }?.count ?? 0
            let cut = head + rng.below(max(1, chain.count - head))
            guard cut < chain.count else { continue }
            let tail = Array(chain[cut...])
            churn.append((i, .swappedOut(hashes: tail.reversed())))
            churn.append((i, .swappedIn(hashes: Array(tail.prefix(tail.count / 2)))))
            churn.append((i, .evicted(hashes: tail.reversed(), tier: .hot)))
            let grown = chains.extend(Array(chain[..<cut]), by: tail.count)
            churn.append((i, .inserted(parent: cut == 0 ? .root : chain[cut - 1], hashes: Array(grown[cut...]), tokens: [], tier: .hot)))
            conversations[c].chain = grown
            churned += tail.count
        }
        let t1 = ContinuousClock.now
        for (i, e) in churn {
            seqs[i] += 1
            _ = scheduler.ingest(e, seq: seqs[i], from: ids[i], now: 2)
        }
        ingest += ContinuousClock.now - t1
        blockEvents += churn.reduce(0) { $0 + $1.1.blockCount }

        // Requests: next turns of conversations (half), new conversations of a family (30%),
        // unrelated prompts (20%).
        var requests: [(hashes: [PrefixHash], tokens: Int)] = []
        let warmup = 500
        requests.reserveCapacity(w.decisions + warmup)
        for _ in 0..<(w.decisions + warmup) {
            let kind = rng.below(10)
            let base: [PrefixHash] = kind < 5 ? conversations[rng.below(conversations.count)].chain
                : kind < 8 ? families[family()] : []
            let chain = chains.extend(Array(base.prefix(248)), by: 1 + rng.below(8))
            requests.append((chain, chain.count * bt + rng.below(bt)))
        }
        var loads = (0..<n).map { _ in
            InstanceLoad(running: rng.below(24), waiting: rng.below(6), queuedPrefillTokens: rng.below(6000),
                         freeBlocks: 2000 + rng.below(6000), totalBlocks: 8192)
        }
        for (k, id) in ids.enumerated() { scheduler.updateLoad(id, loads[k], now: 3) }
        var latencies: [Double] = []
        latencies.reserveCapacity(w.decisions)
        var hit = 0, tokens = 0
        // Requests whose prefill has not started: each routed prompt counts as being computed on
        // its instance until then (untimed), so a window of them stays in flight.
        var inFlight: [(InstanceID, [PrefixHash])] = []
        var inFlightHead = 0
        for (k, r) in requests.enumerated() {
            if k % 64 == 0 {
                // Instances report now and then; untimed.
                for _ in 0..<max(1, n / 10) {
                    let i = rng.below(n)
                    loads[i].running = rng.below(24)
                    loads[i].waiting = rng.below(6)
                    loads[i].queuedPrefillTokens = rng.below(6000)
                    scheduler.updateLoad(ids[i], loads[i], now: 4)
                }
            }
            let t = ContinuousClock.now
            let d = scheduler.route(hashes: r.hashes, promptTokens: r.tokens, kind: .colocated, now: 5)
            let us = MemPoolBench.seconds(ContinuousClock.now - t) * 1e6
            if let c = d.chosen { inFlight.append((c, r.hashes)) }
            if inFlight.count - inFlightHead > w.inFlight {
                scheduler.computed(inFlight[inFlightHead].0, hashes: inFlight[inFlightHead].1)
                inFlightHead += 1
            }
            if k >= warmup {
                latencies.append(us)
                hit += d.transfer.map { $0.toBlock * bt } ?? d.chosenScore?.matchedTokens ?? 0
                tokens += r.tokens
            }
        }
        progress("\(n) instances: \(latencies.count) decisions, p50 \(String(format: "%.1f", percentile(latencies, 0.5))) us, p99 \(String(format: "%.1f", percentile(latencies, 0.99))) us")
        return ConfigurationResult(latencies: latencies, bytesPerHolder: bytesPerHolder,
                                   holders: holderCount, distinct: distinct, hitRate: Double(hit) / Double(max(1, tokens)),
                                   blockEvents: blockEvents, ingestSeconds: MemPoolBench.seconds(ingest))
    }
}
