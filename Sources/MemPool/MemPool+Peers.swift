/// The peer tier: what makes the pools of several instances one elastic pool.
///
/// - An instance *spills*: an own cached block it evicts is first copied to a small staging ring
///   (``MemPoolConfig/spillStagingBlocks``); the global scheduler, hearing of the eviction, orders
///   the prefixes that no other instance holds sent to a peer with room (``beginSpill(_:)``).
/// - A peer *keeps* them as guest blocks (``allocateGuest(_:)``): indexed and announced like its
///   own, at most ``guestLimit`` of them, evicted before any own block and never spilled again.
/// - A guest block that this instance's own requests take into use becomes its own
///   (``claim(_:)``): the prefix moved to where it is wanted.
extension MemPool {
    /// Blocks now staged for a spill.
    public var stagedBlockCount: Int { staging?.count ?? 0 }

    /// Guest blocks in both tiers.
    public var guestBlocks: Int { Int(tiers[0].guests + tiers[1].guests) }

    /// Guest blocks this pool could take now without evicting an own block: free hot blocks and
    /// evictable guests, within ``guestLimit``.
    public var guestRoom: Int {
        let share = guestLimit - guestBlocks + Int(tiers[0].guestEvictable + tiers[1].guestEvictable)
        return Swift.max(0, Swift.min(share, Int(tiers[0].freeCount + tiers[0].guestEvictable)))
    }

    /// Makes held blocks that were kept for a peer this instance's own.
    public func claim(_ blocks: [BlockID]) {
        for id in blocks {
            guard let i = checkedIndex(id), meta[Int(i)].guest, meta[Int(i)].refs > 0 else { continue }
            meta[Int(i)].guest = false
            tiers[tierIndex(i)].guests -= 1
        }
    }

    /// Allocates `n` hot blocks for a peer's prefix, each with a reference count of 1 owned by
    /// the caller and marked as a guest. Makes room only by evicting other guests, oldest
    /// first, and keeps the guests within ``guestLimit``.
    /// - Returns: the blocks, or nil when they cannot be had without evicting own blocks.
    public func allocateGuest(_ n: Int) -> [BlockID]? {
        guard n > 0 else { return n == 0 ? [] : nil }
        guard n <= guestLimit else { return nil }
        defer { flushEvents() }
        while guestBlocks + n > guestLimit {
            // The older guests are the cold ones, then the hot segment's head.
            let t = tiers[1].guestEvictable > 0 ? 1 : 0
            guard tiers[t].guestEvictable > 0 else { return nil }
            truncate(at: tiers[t].lruHead, .evicted)
        }
        guard Int(tiers[0].freeCount + tiers[0].guestEvictable) >= n else { return nil }
        while Int(tiers[0].freeCount) < n { truncate(at: tiers[0].lruHead, .evicted) }
        tiers[0].used += Int32(n)
        tiers[0].guests += Int32(n)
        totals.guestInserted += n
        return (0..<n).map { _ in
            let i = popFree(0)
            meta[Int(i)].refs = 1
            meta[Int(i)].guest = true
            return BlockID(rawValue: i)
        }
    }

    /// A prefix to send to a peer: `tokens` (whole blocks, from the root) and the address of
    /// each block's bytes, held (local blocks retained, staged ones pinned) until
    /// ``endSpill(_:sent:)``. An address of 0 is a block still cached here that a spill does not
    /// hold: the peer must already have it (``requiredBlocks``), or the plan is skipped.
    public struct SpillPlan: Sendable {
        public var tokens: [Int32]
        /// One per block of `tokens`.
        public var addresses: [UInt]
        /// Blocks of the plan that only the staging ring still had.
        public var stagedBlocks: Int { slots.count }
        /// Leading blocks the receiver must already cache (their addresses are 0).
        public var requiredBlocks: Int { addresses.firstIndex { $0 != 0 } ?? addresses.count }
        var held: [BlockID]
        /// Each held block's recency when it was cached (`UInt64.max`: it was in use), restored
        /// at the end: reading a prefix for a peer is not a use of it.
        var stamps: [UInt64] = []
        var slots: [Int]
    }

    /// Plans sending the blocks among `hashes` (by the chained hash through each block) with
    /// their whole path from the root and the staged blocks that continue it: one plan per
    /// deepest prefix; blocks neither staged nor cached any more end a plan.
    ///
    /// A spill of evicted blocks (`holdCached` false) sends staged copies only: the path's
    /// blocks still cached here stay untouched (an instance evicting is short of blocks, and
    /// holding them for the transfer would take more), so the peer must have them already, and
    /// when they are evicted in turn, their order sends them with everything staged below.
    /// A draining instance (`holdCached`) sends what it caches: hashes that are not staged are
    /// found by one walk over the tree and their blocks held until the end.
    public func beginSpill(_ hashes: [PrefixHash], holdCached: Bool = false) -> [SpillPlan] {
        let requested = Set(hashes.map(\.value))
        var wanted: [(hash: UInt64, path: [Int32])] = []
        var notStaged = Set<UInt64>()
        var seen = Set<UInt64>()
        for h in hashes.map(\.value) where seen.insert(h).inserted {
            if let staging, let s = staging.slot(of: h), let e = staging.entries[s] {
                wanted.append((h, e.path))
            } else {
                notStaged.insert(h)
            }
        }
        if holdCached && !notStaged.isEmpty { wanted += cachedPaths(notStaged) }
        if let staging { wanted = wanted.map { ($0.hash, staging.longestStagedPath(from: $0.hash, path: $0.path)) } }
        wanted.sort { $0.path.count > $1.path.count }
        var covered = Set<UInt64>()
        var plans: [SpillPlan] = []
        for (hash, path) in wanted where !covered.contains(hash) {
            let chain = PrefixHash.chain(path, blockTokens: blockTokens)
            var plan = SpillPlan(tokens: [], addresses: [], held: [], slots: [])
            var local: [Int32] = []
            _ = walkCachedPrefix(path) { _, b in local.append(b) }
            var k = 0
            while k < chain.count {
                if let staging, let s = staging.slot(of: chain[k].value) {
                    staging.pin(s)
                    plan.slots.append(s)
                    plan.addresses.append(UInt(bitPattern: staging.address(s)))
                } else if k < local.count, !holdCached {
                    plan.addresses.append(0)
                } else if k < local.count, let a = address(of: handle(local[k])) {
                    let b = local[k], stamp = meta[Int(b)].inLRU ? meta[Int(b)].stamp : UInt64.max
                    guard incRef(b) else { break }
                    plan.held.append(handle(b))
                    plan.stamps.append(stamp)
                    plan.addresses.append(UInt(bitPattern: a))
                } else {
                    break
                }
                k += 1
            }
            plan.addresses.removeLast(plan.addresses.count - k)
            let covers = chain.prefix(k).filter { requested.contains($0.value) }
            // A block cached here but not held comes after a staged one: the peer cannot have it.
            let gap = plan.addresses.drop { $0 == 0 }.contains(0)
            guard !covers.isEmpty, plan.requiredBlocks < k, !gap else {
                endSpill(plan, sent: false)
                continue
            }
            for h in chain.prefix(k) { covered.insert(h.value) }
            plan.tokens = Array(path.prefix(k * blockTokens))
            plans.append(plan)
        }
        return plans
    }

    /// For the cached blocks among `hashes` that have no cached successor among them, the
    /// hash and the path from the root.
    private func cachedPaths(_ hashes: Set<UInt64>) -> [(hash: UInt64, path: [Int32])] {
        var found: [Int32] = []
        for i in 0..<Int32(config.totalBlocks) where meta[Int(i)].node >= 0 && hashes.contains(meta[Int(i)].hash) {
            found.append(i)
        }
        let set = Set(found)
        return found.compactMap { i -> (UInt64, [Int32])? in
            let next = meta[Int(i)].chainNext
            if next >= 0 { return set.contains(next) ? nil : (meta[Int(i)].hash, pathTokens(through: i)) }
            var c = nodes[Int(meta[Int(i)].node)].firstChild
            while c >= 0 {
                if set.contains(nodes[Int(c)].first) { return nil }
                c = nodes[Int(c)].nextSibling
            }
            return (meta[Int(i)].hash, pathTokens(through: i))
        }
    }

    /// Ends a spill: releases what ``beginSpill(_:)`` held; staged blocks that reached the peer
    /// leave the ring.
    public func endSpill(_ plan: SpillPlan, sent: Bool) {
        for (b, stamp) in zip(plan.held, plan.stamps).reversed() {
            guard let i = checkedIndex(b), decRef(i) else { continue }
            if stamp != .max, meta[Int(i)].inLRU, !meta[Int(i)].guest { restoreRecency(i, stamp) }
        }
        guard let staging else { return }
        for s in plan.slots {
            staging.unpin(s)
            if sent { staging.clear(s) }
        }
        if sent { totals.spilled += plan.slots.count }
    }

    /// Moves own block `i` (in its LRU list) back to where `stamp` puts it among the own
    /// blocks, which are in stamp order: a walk from both ends, as long as the shorter side.
    func restoreRecency(_ i: Int32, _ stamp: UInt64) {
        let t = tierIndex(i)
        lruRemove(i)
        let firstOwn = tiers[t].guestTail >= 0 ? meta[Int(tiers[t].guestTail)].lruNext : tiers[t].lruHead
        var back = tiers[t].lruTail, front = firstOwn
        var after: Int32 = -1
        while true {
            if back < 0 || meta[Int(back)].guest || meta[Int(back)].stamp < stamp {
                after = back >= 0 && !meta[Int(back)].guest ? back : tiers[t].guestTail
                break
            }
            if front < 0 || meta[Int(front)].stamp > stamp {
                after = front >= 0 ? meta[Int(front)].lruPrev : tiers[t].lruTail
                break
            }
            back = meta[Int(back)].lruPrev
            front = meta[Int(front)].lruNext
        }
        let next = after >= 0 ? meta[Int(after)].lruNext : tiers[t].lruHead
        meta[Int(i)].lruPrev = after
        meta[Int(i)].lruNext = next
        if after >= 0 { meta[Int(after)].lruNext = i } else { tiers[t].lruHead = i }
        if next >= 0 { meta[Int(next)].lruPrev = i } else { tiers[t].lruTail = i }
        meta[Int(i)].inLRU = true
        meta[Int(i)].stamp = stamp
        tiers[t].lruCount += 1
    }

    /// Copies evicted own block `i` (still indexed) to the staging ring.
    func stage(_ i: Int32) {
        guard let staging else { return }
        let path = pathTokens(through: i)
        let prev = meta[Int(i)].chainPrev, node = meta[Int(i)].node
        let parentNode = nodes[Int(node)].parent
        let parent = prev >= 0 ? meta[Int(prev)].hash
            : parentNode > 0 ? meta[Int(nodes[Int(parentNode)].last)].hash : PrefixHash.root.value
        let ok = staging.stage(hash: meta[Int(i)].hash, parent: parent, path: path) { dst in
            if i < hotCount32 {
                dst.copyMemory(from: hotAddress(i), byteCount: blockBytes)
                return true
            }
            return cold.read(slot: Int(i - hotCount32), into: dst) == 0
        }
        if ok { totals.staged += 1 }
    }

    /// The tokens of the prefix from the root through indexed block `i`.
    func pathTokens(through i: Int32) -> [Int32] {
        var chain: [Int32] = []
        var x = i, n = meta[Int(i)].node
        while true {
            chain.append(x)
            let p = meta[Int(x)].chainPrev
            if p >= 0 {
                x = p
                continue
            }
            let parent = nodes[Int(n)].parent
            guard parent > 0 else { break }
            n = parent
            x = nodes[Int(n)].last
        }
        var out: [Int32] = []
        out.reserveCapacity(chain.count * blockTokens)
        for b in chain.reversed() { out.append(contentsOf: UnsafeBufferPointer(start: tokens(b), count: blockTokens)) }
        return out
    }
}
