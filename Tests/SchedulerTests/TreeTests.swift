import MemPool
import Scheduler
import Testing

@Suite("Global prompt tree")
struct TreeTests {
    /// Random holdings of many instances over a few shared chains, against a model of
    /// prefix-closed holdings: nodes go from one holder to lists to bitsets and back, and
    /// instance slots are reused after removal, past 64 slots (bitsets widen).
    @Test func matchesAModelWithManyInstances() throws {
        let tree = GlobalPromptTree()
        var rng = SeededRNG(seed: 4242)
        let chains = (0..<4).map { chainHashes($0, blocks: 24) }
        // Model: instance → chain → tiers of its leading blocks.
        var model: [InstanceID: [Int: [BlockTier]]] = [:]
        var nextID: UInt32 = 0
        var live: [InstanceID] = []
        var widest = 0
        for round in 0..<4000 {
            let op = rng.below(100)
            if live.isEmpty || (op < 8 && live.count < 150) || round < 100 {
                let id = InstanceID(nextID)
                nextID += 1
                live.append(id)
                model[id] = [:]
                continue
            }
            let id = live[rng.below(live.count)]
            let c = rng.below(chains.count), chain = chains[c]
            var tiers = model[id]![c] ?? []
            switch op {
            case 8..<45:
                // Insert a longer prefix (a pool inserts only what it lacks, under what it has).
                let to = min(chain.count, tiers.count + 1 + rng.below(6))
                let tier: BlockTier = rng.below(4) == 0 ? .cold : .hot
                if to > tiers.count {
                    tree.apply(inserted(chain, tiers.count, to, tier: tier), from: id)
                    tiers += Array(repeating: tier, count: to - tiers.count)
                }
            case 45..<70:
                // Evict the deepest few, deepest first.
                let n = min(tiers.count, 1 + rng.below(5))
                let gone = (tiers.count - n..<tiers.count).reversed().map { chain[$0] }
                tree.apply(rng.below(2) == 0 ? .evicted(hashes: gone, tier: .hot) : .deleted(hashes: gone, tier: .cold), from: id)
                tiers.removeLast(n)
            case 70..<88:
                guard !tiers.isEmpty else { break }
                let k = rng.below(tiers.count)
                let cold = rng.below(2) == 0
                tree.apply(cold ? .swappedOut(hashes: [chain[k]]) : .swappedIn(hashes: [chain[k]]), from: id)
                tiers[k] = cold ? .cold : .hot
            case 88..<94:
                tree.remove(id)
                live.removeAll { $0 == id }
                model[id] = nil
                continue
            default:
                // Resync from a snapshot-like list that differs from what the tree has.
                var fresh: [Int: [BlockTier]] = [:]
                var entries: [CacheEntry] = []
                for cc in 0..<chains.count where rng.below(2) == 0 {
                    let n = rng.below(chains[cc].count + 1)
                    let t = (0..<n).map { _ in rng.below(3) == 0 ? BlockTier.cold : .hot }
                    fresh[cc] = t
                    for k in 0..<n { entries.append(CacheEntry(parent: k == 0 ? .root : chains[cc][k - 1], hash: chains[cc][k], tier: t[k])) }
                }
                tree.replace(id, with: entries)
                model[id] = fresh
                continue
            }
            model[id]![c] = tiers
            if round % 97 == 0 { try tree.validate() }
            if round % 13 == 0 {
                let probe = chains[rng.below(chains.count)]
                let pc = chains.firstIndex(of: probe)!
                let len = rng.below(probe.count + 1)
                let hits = Dictionary(tree.match(Array(probe[0..<len])).map { ($0.instance, $0) }, uniquingKeysWith: { a, _ in a })
                for (i, m) in model {
                    let t = Array((m[pc] ?? []).prefix(len))
                    #expect((hits[i]?.blocks ?? 0) == t.count && (hits[i]?.hotBlocks ?? 0) == t.filter { $0 == .hot }.count,
                            "round \(round): \(i) on chain \(pc)")
                }
                widest = max(widest, model.values.filter { ($0[0]?.count ?? 0) > 0 }.count)
                #expect(hits.keys.allSatisfy { model[$0] != nil && (model[$0]![pc]?.count ?? 0) > 0 })
            }
        }
        try tree.validate()
        #expect(tree.mismatches == 0)
        for (i, m) in model {
            var expected: [PrefixHash: BlockTier] = [:]
            for (c, tiers) in m { for (k, t) in tiers.enumerated() { expected[chains[c][k]] = t } }
            #expect(tree.view(of: i) == expected)
        }
        #expect(nextID > 64, "slots past one bitset word")
        #expect(widest > 16, "some block is held widely enough to be a bitset")
    }

    @Test func eventsThatDoNotFitAreCountedNotApplied() {
        let tree = GlobalPromptTree()
        let a = chainHashes(1, blocks: 3)
        tree.apply(.evicted(hashes: [a[0]], tier: .hot), from: InstanceID(0))
        tree.apply(inserted(a, 0, 2), from: InstanceID(0))
        tree.apply(.swappedOut(hashes: [a[2]]), from: InstanceID(0))
        tree.apply(.deleted(hashes: [a[2]], tier: .hot), from: InstanceID(0))
        #expect(tree.mismatches == 3)
        #expect(tree.view(of: InstanceID(0)) == [a[0]: .hot, a[1]: .hot])
        #expect(tree.match(a) == [PrefixHit(instance: InstanceID(0), blocks: 2, hotBlocks: 2)])
        #expect(tree.match([a[0], a[2]]) == [PrefixHit(instance: InstanceID(0), blocks: 1, hotBlocks: 1)])
    }

    @Test func snapshotEntriesComeParentsFirstAndChain() throws {
        let pool = try MemPool(MemPoolConfig(blockTokens: 4, blockBytes: 16, hotBlocks: 32, coldBlocks: 8))
        let a: [Int32] = Array(0..<24), b = Array(a[0..<8]) + Array(100..<112)
        for t in [a, b, Array(a[0..<12]) + [7, 7, 7, 7]] {
            let blocks = try #require(pool.allocate(t.count / 4))
            pool.insert(tokens: t, blocks: blocks)
            pool.release(blocks)
        }
        pool.swapOut(3)
        let entries = CacheEntry.entries(of: pool.snapshot())
        var seen: Set<PrefixHash> = [.root]
        for e in entries {
            #expect(seen.contains(e.parent))
            seen.insert(e.hash)
        }
        #expect(Dictionary(entries.map { ($0.hash, $0.tier) }, uniquingKeysWith: { a, _ in a }) == poolView(pool))
        #expect(entries.filter { $0.tier == .cold }.count == 3)
        #expect(Set(PrefixHash.chain(a, blockTokens: 4)).isSubset(of: seen))
    }

    @Test func feedSequenceNumbers() {
        var f = CacheFeed()
        #expect(f.needsSnapshot && f.accept(seq: 1) == .gap)
        f.reset(to: 10)
        #expect(f.accept(seq: 9) == .duplicate && f.accept(seq: 10) == .duplicate)
        #expect(f.accept(seq: 11) == .apply && f.accept(seq: 12) == .apply && f.lastSeq == 12)
        #expect(f.accept(seq: 14) == .gap && f.needsSnapshot)
        #expect(f.accept(seq: 15) == .gap, "gaps until a snapshot")
        f.reset(to: 15)
        #expect(f.accept(seq: 16) == .apply)
        f.invalidate()
        #expect(f.accept(seq: 17) == .gap)
    }

    /// Counts (not times) the tree's reserved bytes for a realistic spread: shared heads held by
    /// many instances, unique tails by one.
    @Test func bytesPerCachedBlockPerHolderStayUnder64() {
        let tree = GlobalPromptTree()
        var rng = SeededRNG(seed: 7)
        let heads = (0..<16).map { chainHashes(1000 + $0, blocks: 8 + rng.below(56), blockTokens: 16) }
        var total = 0, family = 0
        for inst in 0..<96 {
            let id = InstanceID(UInt32(inst))
            var held = Set<Int>()
            for _ in 0..<12 {
                let h = rng.below(heads.count)
                let head = heads[h]
                family += 1
                let chain = head + PrefixHash.chain((0..<(16 * (16 + rng.below(200)))).map { Int32(family * 10_000 + $0) },
                                                    blockTokens: 16)
                let from = held.contains(h) ? head.count : 0
                held.insert(h)
                tree.apply(inserted(chain, from, chain.count), from: id)
                total += chain.count - from
            }
        }
        #expect(tree.holderCount == total)
        #expect(tree.blockCount < tree.holderCount)
        let perHolder = Double(tree.approximateBytes) / Double(tree.holderCount)
        #expect(perHolder < 64, "\(perHolder) bytes per cached block per holder")
        #expect(tree.approximateBytes >= 16 * tree.blockCount, "every node costs at least its 16-byte slot")
    }
}
