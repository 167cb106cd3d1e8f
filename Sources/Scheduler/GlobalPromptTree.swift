import MemPool

/// An exact index of which instances cache which block-prefixes, and in which tier: one of the
/// global scheduler's prompt trees (one per ``InstanceKind``), fed by the instances'
/// ``MemPool/MemPoolEvent``s and resynchronized from their snapshots.
///
/// A node is one cached block-prefix, identified by its chained ``MemPool/PrefixHash``, which names
/// the whole path from the root: the tree's shape lives in the hashes, so nodes need no links and
/// a node goes when its last holder leaves. Applying an instance's events in order reproduces the
/// instance's own tree (``view(of:)``), hash for hash and tier for tier.
///
/// Since a pool caches a block only with all the blocks before it (prefix closure), one walk down
/// a request's hash chain gives every instance's match (``match(_:)``).
///
/// Not thread-safe: one owner makes every call (``GlobalScheduler`` is that owner in a server).
public final class GlobalPromptTree {
    var storage: HolderStorage
    /// Dense slot of each instance that holds or held blocks.
    private var slotOf: [InstanceID: Int] = [:]
    private var instanceOfSlot: [InstanceID?] = []
    private var freeSlots: [Int] = []
    private var blocksOfSlot: [Int] = []
    private var hotOfSlot: [Int] = []
    /// Match scratch, per slot and per bitset word.
    private var depth: UnsafeMutablePointer<Int32>
    private var coldCount: UnsafeMutablePointer<Int32>
    private var alive: UnsafeMutablePointer<UInt64>
    private var next: UnsafeMutablePointer<UInt64>
    private var ever: UnsafeMutablePointer<UInt64>
    private var scratchSlots = 0
    /// The nodes of a request's chain, found before the walk.
    private var path: UnsafeMutablePointer<TreeSlot>
    private var pathCapacity = 0
    /// Keeps the prefetching reads of `match` from being optimized away.
    private var sink: UInt64 = 0

    /// Events that named a block the instance does not hold (eviction, deletion or swap of an
    /// unknown prefix) or inserted one it already held. Zero for an exact, gap-free feed.
    public private(set) var mismatches = 0

    /// An empty tree; `expectedBlocks` presizes the node table.
    public init(expectedBlocks: Int = 0) {
        storage = HolderStorage(expectedNodes: expectedBlocks)
        depth = .allocate(capacity: 1)
        coldCount = .allocate(capacity: 1)
        alive = .allocate(capacity: 1)
        next = .allocate(capacity: 1)
        ever = .allocate(capacity: 1)
        path = .allocate(capacity: 1)
        growScratch(to: 64)
        growPath(to: 256)
    }

    deinit {
        storage.release()
        depth.deallocate()
        coldCount.deallocate()
        alive.deallocate()
        next.deallocate()
        ever.deallocate()
        path.deallocate()
    }

    private func growPath(to n: Int) {
        path.deallocate()
        pathCapacity = max(n, 2 * pathCapacity)
        path = .allocate(capacity: pathCapacity)
    }

    // MARK: - Counts

    /// Distinct cached block-prefixes (nodes).
    public var blockCount: Int { storage.nodes }

    /// (block, holder) pairs: the sum of every instance's cached blocks.
    public var holderCount: Int { storage.holders }

    /// Bytes reserved by the tree's storage (table, holder pools, per-instance arrays).
    public var approximateBytes: Int {
        storage.bytes + scratchSlots * (2 * MemoryLayout<Int32>.stride) + 3 * (scratchSlots / 64) * 8
            + pathCapacity * MemoryLayout<TreeSlot>.stride
            + instanceOfSlot.capacity * (MemoryLayout<InstanceID?>.stride + 2 * MemoryLayout<Int>.stride)
            + slotOf.capacity * (MemoryLayout<InstanceID>.stride + MemoryLayout<Int>.stride)
    }

    /// Instances holding at least one block, in identifier order.
    public var instances: [InstanceID] {
        slotOf.compactMap { blocksOfSlot[$0.value] > 0 ? $0.key : nil }.sorted()
    }

    /// Blocks `instance` caches.
    public func blocks(of instance: InstanceID) -> Int { slotOf[instance].map { blocksOfSlot[$0] } ?? 0 }

    /// Blocks `instance` caches in its hot tier.
    public func hotBlocks(of instance: InstanceID) -> Int { slotOf[instance].map { hotOfSlot[$0] } ?? 0 }

    /// Whether any instance caches the prefix through `hash`.
    public func isCached(_ hash: PrefixHash) -> Bool { storage.find(hash.value) >= 0 }

    /// The prefixes `instance` alone caches (what would be lost if it left). O(nodes).
    public func onlyCopies(of instance: InstanceID) -> [PrefixHash] {
        guard let s = slotOf[instance] else { return [] }
        var out: [PrefixHash] = []
        for i in 0..<storage.capacity {
            let node = storage.slots[i]
            if node.count != 0, !node.isWide, node.holders == 1, Int(node.ref >> 1) == s { out.append(PrefixHash(value: node.key)) }
        }
        return out
    }

    // MARK: - Feeding

    /// Applies one event of `instance`'s pool.
    public func apply(_ event: MemPoolEvent, from instance: InstanceID) {
        switch event {
        case .inserted(_, let hashes, _, let tier):
            let s = slot(for: instance)
            let entry = UInt32(s << 1) | (tier == .cold ? 1 : 0)
            for h in hashes { noteAdded(storage.add(h.value, entry), s, tier) }
        case .evicted(let hashes, _), .deleted(let hashes, _):
            guard let s = slotOf[instance] else {
                mismatches += hashes.count
                return
            }
            for h in hashes {
                if let was = storage.remove(h.value, slot: s) {
                    blocksOfSlot[s] -= 1
                    if was & 1 == 0 { hotOfSlot[s] -= 1 }
                } else {
                    mismatches += 1
                }
            }
        case .swappedOut(let hashes): retier(hashes, instance, cold: true)
        case .swappedIn(let hashes): retier(hashes, instance, cold: false)
        }
    }

    /// Replaces everything known of `instance` by a snapshot's entries (``CacheEntry/entries(of:)``).
    public func replace(_ instance: InstanceID, with entries: [CacheEntry]) {
        remove(instance)
        guard !entries.isEmpty else { return }
        let s = slot(for: instance)
        for e in entries {
            noteAdded(storage.add(e.hash.value, UInt32(s << 1) | (e.tier == .cold ? 1 : 0)), s, e.tier)
        }
    }

    /// Forgets `instance`: its holdings leave every node, and nodes left without holders go.
    /// O(nodes) when it holds anything.
    public func remove(_ instance: InstanceID) {
        guard let s = slotOf[instance] else { return }
        var left = blocksOfSlot[s]
        var i = 0
        while left > 0 && i < storage.capacity {
            if storage.slots[i].count != 0, storage.entry(at: i, slot: s) != nil {
                let before = storage.nodes
                _ = storage.remove(at: i, slot: s)
                left -= 1
                // The node went: a later entry of its cluster may have moved into `i`.
                if storage.nodes < before { continue }
            }
            i += 1
        }
        slotOf.removeValue(forKey: instance)
        instanceOfSlot[s] = nil
        blocksOfSlot[s] = 0
        hotOfSlot[s] = 0
        freeSlots.append(s)
        storage.shrinkIfSparse()
    }

    private func noteAdded(_ was: UInt32?, _ s: Int, _ tier: BlockTier) {
        if let was {
            mismatches += 1
            if was & 1 == 0 { hotOfSlot[s] -= 1 }
        } else {
            blocksOfSlot[s] += 1
        }
        if tier == .hot { hotOfSlot[s] += 1 }
    }

    private func retier(_ hashes: [PrefixHash], _ instance: InstanceID, cold: Bool) {
        guard let s = slotOf[instance] else {
            mismatches += hashes.count
            return
        }
        for h in hashes {
            guard let was = storage.setTier(h.value, slot: s, cold: cold) else {
                mismatches += 1
                continue
            }
            hotOfSlot[s] += (cold ? 0 : 1) - (was & 1 == 0 ? 1 : 0)
        }
    }

    private func slot(for instance: InstanceID) -> Int {
        if let s = slotOf[instance] { return s }
        let s: Int
        if let f = freeSlots.popLast() {
            s = f
            instanceOfSlot[s] = instance
        } else {
            s = instanceOfSlot.count
            instanceOfSlot.append(instance)
            blocksOfSlot.append(0)
            hotOfSlot.append(0)
        }
        slotOf[instance] = s
        storage.ensureSlots(s + 1)
        if s >= scratchSlots { growScratch(to: storage.words * 64) }
        return s
    }

    private func growScratch(to slots: Int) {
        let n = max(64, (slots + 63) / 64 * 64)
        guard n > scratchSlots else { return }
        for p in [depth, coldCount] { p.deallocate() }
        for p in [alive, next, ever] { p.deallocate() }
        depth = .allocate(capacity: n)
        depth.initialize(repeating: 0, count: n)
        coldCount = .allocate(capacity: n)
        coldCount.initialize(repeating: 0, count: n)
        alive = .allocate(capacity: n / 64)
        alive.initialize(repeating: 0, count: n / 64)
        next = .allocate(capacity: n / 64)
        next.initialize(repeating: 0, count: n / 64)
        ever = .allocate(capacity: n / 64)
        ever.initialize(repeating: 0, count: n / 64)
        scratchSlots = n
    }

    // MARK: - Queries

    /// For every instance holding the request's first block: how many leading blocks of
    /// `hashes` (``MemPool/PrefixHash/chain(_:blockTokens:)`` of the prompt) it caches, and how
    /// many of those are hot. In the tree's slot order, not sorted by identifier.
    ///
    /// One walk down the chain: at each block, instances still matching are intersected with the
    /// block's holders (bitsets for widely held blocks), so a block every instance holds costs a
    /// few words, not one step per holder.
    public func match(_ hashes: [PrefixHash]) -> [PrefixHit] {
        let words = storage.words
        if hashes.count > pathCapacity { growPath(to: hashes.count) }
        // First every lookup, then the walk: the lookups are independent cache misses, so a
        // tight loop of them overlaps their latency; the walk then reads what they brought in.
        var found = 0
        var touched: UInt64 = 0
        hashes.withUnsafeBufferPointer { hp in
            while found < hp.count {
                let idx = storage.find(hp[found].value)
                guard idx >= 0 else { break }
                let s = storage.slots[idx]
                path[found] = s
                // Bring the holder list or bitsets in too.
                if s.isWide {
                    touched ^= storage.widePointer(s)[0]
                } else if s.holders > 1 {
                    touched ^= UInt64(storage.narrowEntries(s)[0])
                }
                found += 1
            }
        }
        sink ^= touched
        var steps = 0
        for i in 0..<found {
            let s = path[i]
            let anyAlive: Bool
            if i == 0 {
                start(s, words)
                anyAlive = true
            } else {
                anyAlive = step(s, words, depthOfDropped: Int32(i))
            }
            steps = i + 1
            if !anyAlive { break }
        }
        guard steps > 0 else { return [] }
        var out: [PrefixHit] = []
        for w in 0..<words {
            // Slots still matching after the last step hold every block walked.
            var a = alive[w]
            while a != 0 {
                let t = a.trailingZeroBitCount
                a &= a - 1
                depth[w * 64 + t] = Int32(steps)
            }
            alive[w] = 0
            var e = ever[w]
            ever[w] = 0
            while e != 0 {
                let t = e.trailingZeroBitCount
                e &= e - 1
                let slot = w * 64 + t
                if let id = instanceOfSlot[slot] {
                    let d = Int(depth[slot])
                    out.append(PrefixHit(instance: id, blocks: d, hotBlocks: d - Int(coldCount[slot])))
                }
                coldCount[slot] = 0
            }
        }
        return out
    }

    /// The first block: every holder starts matching.
    @inline(__always)
    private func start(_ s: TreeSlot, _ words: Int) {
        if s.isWide {
            let b = storage.widePointer(s)
            for w in 0..<words {
                alive[w] = b[w]
                ever[w] = b[w]
                var c = b[w] & b[words + w]
                while c != 0 {
                    coldCount[w * 64 + c.trailingZeroBitCount] += 1
                    c &= c - 1
                }
            }
            return
        }
        storage.forEachEntry(s) { e in
            let slot = Int(e >> 1)
            alive[slot >> 6] |= UInt64(1) << UInt64(slot & 63)
            coldCount[slot] += Int32(e & 1)
        }
        for w in 0..<words { ever[w] = alive[w] }
    }

    /// A later block: matching slots that do not hold it stop at `depthOfDropped` blocks.
    /// Returns whether any slot still matches.
    @inline(__always)
    private func step(_ s: TreeSlot, _ words: Int, depthOfDropped: Int32) -> Bool {
        if s.isWide {
            let b = storage.widePointer(s)
            for w in 0..<words {
                let n = alive[w] & b[w]
                next[w] = n
                var c = n & b[words + w]
                while c != 0 {
                    coldCount[w * 64 + c.trailingZeroBitCount] += 1
                    c &= c - 1
                }
            }
        } else {
            for w in 0..<words { next[w] = 0 }
            storage.forEachEntry(s) { e in
                let slot = Int(e >> 1), w = slot >> 6, bit = UInt64(1) << UInt64(slot & 63)
                if alive[w] & bit != 0 {
                    next[w] |= bit
                    coldCount[slot] += Int32(e & 1)
                }
            }
        }
        var any: UInt64 = 0
        for w in 0..<words {
            var dropped = alive[w] & ~next[w]
            while dropped != 0 {
                depth[w * 64 + dropped.trailingZeroBitCount] = depthOfDropped
                dropped &= dropped - 1
            }
            alive[w] = next[w]
            any |= next[w]
        }
        return any != 0
    }

    /// What the tree records of `instance`: prefix hash → tier. O(nodes); for tests and tools.
    public func view(of instance: InstanceID) -> [PrefixHash: BlockTier] {
        guard let s = slotOf[instance] else { return [:] }
        var out: [PrefixHash: BlockTier] = [:]
        out.reserveCapacity(blocksOfSlot[s])
        for i in 0..<storage.capacity where storage.slots[i].count != 0 {
            if let e = storage.entry(at: i, slot: s) { out[PrefixHash(value: storage.slots[i].key)] = e & 1 == 0 ? .hot : .cold }
        }
        return out
    }

    /// Checks the bookkeeping: per-instance counts, node holder counts, lookups of every node,
    /// and that no entry names a forgotten slot. O(nodes).
    public func validate() throws(SchedulerError) {
        var blocks = [Int](repeating: 0, count: instanceOfSlot.count)
        var hot = [Int](repeating: 0, count: instanceOfSlot.count)
        var nodes = 0, holders = 0
        for i in 0..<storage.capacity where storage.slots[i].count != 0 {
            let s = storage.slots[i]
            nodes += 1
            guard storage.find(s.key) == i else { throw .inconsistent("node \(PrefixHash(value: s.key)) is not found by lookup") }
            var seen = Set<Int>()
            var bad: String? = nil
            storage.forEachEntry(s) { e in
                let slot = Int(e >> 1)
                if slot >= instanceOfSlot.count || instanceOfSlot[slot] == nil { bad = "entry of unknown slot \(slot)" }
                if !seen.insert(slot).inserted { bad = "slot \(slot) listed twice" }
                if slot < blocks.count {
                    blocks[slot] += 1
                    if e & 1 == 0 { hot[slot] += 1 }
                }
            }
            if let bad { throw .inconsistent("node \(PrefixHash(value: s.key)): \(bad)") }
            guard seen.count == s.holders, s.holders > 0 else { throw .inconsistent("holder count of \(PrefixHash(value: s.key))") }
            if s.isWide {
                let b = storage.widePointer(s)
                for w in 0..<storage.words where b[storage.words + w] & ~b[w] != 0 {
                    throw .inconsistent("cold bits outside members at \(PrefixHash(value: s.key))")
                }
            }
            holders += s.holders
        }
        guard nodes == storage.nodes, holders == storage.holders else {
            throw .inconsistent("totals: \(nodes) nodes / \(storage.nodes), \(holders) holders / \(storage.holders)")
        }
        guard blocks == blocksOfSlot, hot == hotOfSlot else { throw .inconsistent("per-instance block counts") }
        for (id, s) in slotOf where instanceOfSlot[s] != id { throw .inconsistent("slot map of \(id)") }
    }
}
