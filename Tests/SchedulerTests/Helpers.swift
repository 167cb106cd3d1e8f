import Kernels
import MemPool
import Scheduler

/// The project's seeded generator, so randomized tests replay exactly.
typealias SeededRNG = SplitMix64

extension SplitMix64 {
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(1, n))) }
}

/// A profile with round numbers: 16-token blocks of 64 KiB, 100 us per token plus 10 ms per
/// prefill, no attention term unless given, and a link of `gbps` GB/s.
func profile(perTokenSeconds: Double = 1e-4, overhead: Double = 0.01, attention: Double = 0,
             gbps: Double = 1, latency: Double = 0, blockTokens: Int = 16) -> InstanceProfile {
    InstanceProfile(blockTokens: blockTokens, blockBytes: 64 << 10, prefillOverheadSeconds: overhead,
                    prefillSecondsPerToken: perTokenSeconds, attentionSecondsPerTokenPair: attention,
                    transferBytesPerSecond: gbps * 1e9, transferLatencySeconds: latency)
}

/// The hash → tier map of a pool's tree, computed from its snapshot without `CacheEntry`: every
/// node's full token prefix, chained afresh.
func poolView(_ pool: MemPool) -> [PrefixHash: BlockTier] {
    let snap = pool.snapshot()
    var out: [PrefixHash: BlockTier] = [:]
    for node in snap.nodes {
        let chain = PrefixHash.chain(snap.prefixTokens(of: node), blockTokens: snap.blockTokens)
        for (k, b) in node.blocks.enumerated() { out[chain[node.startBlock + k]] = b.tier }
    }
    return out
}

/// The match a view implies for a prompt's chain: leading blocks present, and how many are hot.
func expectedMatch(_ view: [PrefixHash: BlockTier], _ hashes: [PrefixHash]) -> (blocks: Int, hot: Int) {
    var n = 0, hot = 0
    while n < hashes.count, let t = view[hashes[n]] {
        if t == .hot { hot += 1 }
        n += 1
    }
    return (n, hot)
}

/// Hashes of a synthetic chain: block `i` of prompt family `f`.
func chainHashes(_ family: Int, blocks: Int, blockTokens: Int = 4) -> [PrefixHash] {
    PrefixHash.chain((0..<(blocks * blockTokens)).map { Int32(family * 100_000 + $0) }, blockTokens: blockTokens)
}

/// An `inserted` event for blocks `from..<to` of a chain.
func inserted(_ chain: [PrefixHash], _ from: Int, _ to: Int, tier: BlockTier = .hot) -> MemPoolEvent {
    .inserted(parent: from == 0 ? .root : chain[from - 1], hashes: Array(chain[from..<to]), tokens: [], tier: tier)
}
