import Foundation
import Kernels
import MemPool

/// Figures of ``MemPoolBench/run()``. Times are medians; field names are the JSON keys.
public struct MemPoolBenchResult: Codable, Sendable {
    /// `allocate(16)` then `release` of the batch, from the free list, per block.
    public var alloc_free_ns_per_block: Double
    /// `allocate(16)` when every block must come from evicting a cached block (no cold tier:
    /// evicted blocks are dropped from the tree), per block.
    public var alloc_evict_ns_per_block: Double
    /// `match` of a 4,096-token prompt, over an even mix of full hits, partial hits and misses.
    public var match_us_4k: Double
    /// `match` of a fully cached 4,096-token prompt (256 blocks found).
    public var match_hit_us_4k: Double
    /// `match` of a prompt sharing its first 32–96 blocks with cached prompts, then diverging.
    public var match_partial_us_4k: Double
    /// `match` of a prompt whose first block is not cached.
    public var match_miss_us_4k: Double
    /// `insert` of a new 4,096-token prompt (256 new blocks); allocation not included.
    public var insert_us_4k: Double
    /// `insert` of a prompt whose first 128 blocks are cached (dedupe, one split); allocation
    /// not included.
    public var insert_shared_us_4k: Double
    /// `insert_us_4k` again, with one synchronous event subscriber that does nothing.
    public var insert_subscribed_us_4k: Double
    /// Cached blocks in the tree while matching and inserting.
    public var tree_blocks: Int
    /// Nodes of that tree.
    public var tree_nodes: Int
    /// Tokens per block.
    public var block_tokens: Int
    /// Timed samples behind each match / insert median.
    public var samples: Int
    /// Wall time of the whole benchmark, seconds.
    public var total_seconds: Double
}

/// Micro-benchmarks of the MemPool API against a tree of 100,000 cached blocks.
public enum MemPoolBench {
    /// Builds the tree (64-byte blocks keep memory small; block size does not enter the
    /// measured paths), then times allocation, matching and insertion.
    public static func run() -> MemPoolBenchResult {
        let start = ContinuousClock.now
        let bt = 16, promptBlocks = 256, treeTarget = 100_000
        guard let pool = try? MemPool(MemPoolConfig(blockTokens: bt, blockBytes: 64, hotBlocks: treeTarget + 12_000)) else {
            fatalError("MemPoolBench: cannot create the pool")
        }
        var rng = BenchRNG(state: 0x5EED)
        // 40 families, each with a 32–96 block shared head (system prompt, document), and a
        // unique tail per prompt: the shape of chat and RAG traffic.
        let families: [[Int32]] = (0..<40).map { _ in rng.tokens((32 + rng.below(65)) * bt) }
        func familyPrompt() -> [Int32] {
            let head = families[rng.below(families.count)]
            return head + rng.tokens(promptBlocks * bt - head.count)
        }
        var cachedPrompts: [[Int32]] = []
        while pool.stats.indexedBlocks < treeTarget {
            let t = familyPrompt()
            guard var table = pool.allocate(promptBlocks) else { break }
            pool.insertAndAdopt(tokens: t, table: &table)
            pool.release(table)
            cachedPrompts.append(t)
        }
        let treeBlocks = pool.stats.indexedBlocks, treeNodes = pool.stats.nodes

        // Allocation from the free list.
        var allocRuns: [Double] = []
        for _ in 0..<7 {
            let iterations = 20_000
            let ns = time {
                for _ in 0..<iterations {
                    if let b = pool.allocate(16) { pool.release(b) }
                }
            }
            allocRuns.append(ns / Double(iterations * 16))
        }

        // Matches: a third each of full hits, partial hits and misses, several rounds.
        let rounds = 5, perKind = 100
        let hits = (0..<perKind).map { _ in cachedPrompts[rng.below(cachedPrompts.count)] }
        let partials = (0..<perKind).map { _ in familyPrompt() }
        let misses = (0..<perKind).map { _ in rng.tokens(promptBlocks * bt) }
        var hitT: [Double] = [], partialT: [Double] = [], missT: [Double] = []
        var sink = 0
        for _ in 0..<rounds {
            for k in 0..<perKind {
                hitT.append(time { sink &+= pool.match(hits[k]).blocks.count } / 1000)
                partialT.append(time { sink &+= pool.match(partials[k]).blocks.count } / 1000)
                missT.append(time { sink &+= pool.match(misses[k]).blocks.count } / 1000)
            }
        }

        // Inserts of new prompts; each is deleted again (untimed) to keep the tree's size.
        func timeInserts(_ prompts: [[Int32]]) -> [Double] {
            prompts.map { t in
                guard let blocks = pool.allocate(promptBlocks) else { return .nan }
                let us = time { sink &+= pool.insert(tokens: t, blocks: blocks).insertedBlocks } / 1000
                pool.release(blocks)
                pool.delete(tokens: t)
                return us
            }
        }
        let samples = rounds * perKind
        let fresh = (0..<samples).map { _ in rng.tokens(promptBlocks * bt) }
        let insertT = timeInserts(fresh)
        let shared = (0..<samples).map { _ in
            Array(cachedPrompts[rng.below(cachedPrompts.count)][0..<(128 * bt)]) + rng.tokens(128 * bt)
        }
        let sharedT = timeInserts(shared)
        let sub = pool.subscribe { _ in }
        let subscribedT = timeInserts(fresh)
        pool.unsubscribe(sub)

        // Allocation by eviction: hold every free block, then each allocation evicts.
        var held: [[BlockID]] = []
        if let rest = pool.allocate(pool.stats.hot.free) { held.append(rest) }
        let evictBatches = 2_000
        let evictNs = time {
            for _ in 0..<evictBatches {
                if let b = pool.allocate(16) { held.append(b) }
            }
        }
        for b in held { pool.release(b) }
        precondition(sink != 0)

        return MemPoolBenchResult(
            alloc_free_ns_per_block: median(allocRuns),
            alloc_evict_ns_per_block: evictNs / Double(evictBatches * 16),
            match_us_4k: median(hitT + partialT + missT),
            match_hit_us_4k: median(hitT), match_partial_us_4k: median(partialT), match_miss_us_4k: median(missT),
            insert_us_4k: median(insertT), insert_shared_us_4k: median(sharedT),
            insert_subscribed_us_4k: median(subscribedT),
            tree_blocks: treeBlocks, tree_nodes: treeNodes, block_tokens: bt, samples: samples,
            total_seconds: seconds(ContinuousClock.now - start))
    }

    /// Nanoseconds `body` takes.
    @inline(__always)
    static func time(_ body: () -> Void) -> Double {
        let t0 = ContinuousClock.now
        body()
        return seconds(ContinuousClock.now - t0) * 1e9
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.filter { !$0.isNaN }.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// Seeded, so every run builds the same tree.
struct BenchRNG {
    private var source: SplitMix64
    init(state: UInt64) { source = SplitMix64(seed: state) }
    mutating func next() -> UInt64 { source.next() }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    /// Token ids from a 32k vocabulary.
    mutating func tokens(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32(truncatingIfNeeded: next() % 32_000) } }
}
