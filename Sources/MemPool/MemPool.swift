/// The KV memory of one serving instance: a hot and a cold tier of fixed-size blocks, reference
/// counts, a radix prompt tree that keeps finished prefixes cached, and events describing what is
/// cached (the paper's MemPool).
///
/// The API comes in groups, one file each:
/// - memory (`MemPool+Memory.swift`): ``allocate(_:)``, ``retain(_:)``, ``release(_:)``,
///   ``swapOut(_:)``, ``swapOut(blocks:)``, ``swapIn(_:)``, block addresses and copies;
/// - index (`MemPool+Index.swift`): ``insert(tokens:blocks:)``, ``match(_:)``, ``delete(tokens:)``,
///   ``pin(tokens:)``, ``snapshot()``;
/// - events (`MemPool+Events.swift`): ``subscribe(_:)`` and ``events(bufferingPolicy:)``.
///
/// ## Block life cycle
/// Every block is in exactly one state: **free** (in its tier's free list), **used** (reference
/// count above zero: held by sequences' block tables), or **cached** (count zero, kept by the
/// index). A cached block is **evictable** unless its prefix is pinned; evictable blocks sit in an
/// LRU list per tier. Releasing a block to zero makes it cached if it is indexed, free otherwise.
/// Allocation takes free blocks first, then evicts the least recently used evictable hot blocks:
/// each moves to the cold tier (whose own LRU gives up its oldest block when full) or, without a
/// cold tier, is dropped from the index.
///
/// ## Locking model
/// Matched blocks are protected by their reference counts: to use a match, retain its blocks
/// (``lock(_:)`` is exactly that). Since a sequence holds its whole prefix from the root, a held
/// block's ancestors are held too — SGLang's lock counts up to the root, expressed as vLLM's
/// reference counts. Releasing a table releases it tail first, so a prefix's deeper blocks become
/// older in LRU order than its shallower ones, and eviction takes leaves before their parents.
///
/// ## Threads
/// Not thread-safe: one pool belongs to one scheduler thread, which makes every call. Wrap it in
/// a `Mutex` or an actor to share it. Event handlers run on that thread, inside the call that
/// caused the event, and must not call back into the pool.
public final class MemPool {
    /// The configuration the pool was made with.
    public let config: MemPoolConfig
    /// Tokens per block.
    public let blockTokens: Int
    /// Bytes per block.
    public let blockBytes: Int
    /// Blocks in the hot tier.
    public let hotBlocks: Int
    /// Blocks in the cold tier.
    public let coldBlocks: Int
    /// Start of the hot tier: hot block `b` lives at `hotBase + b.slot * blockBytes`.
    public let hotBase: UnsafeMutableRawPointer

    let cold: ColdStorage
    let hotCount32: Int32
    /// Per-block bookkeeping, hot slots first, then cold slots (the "meta index").
    let meta: UnsafeMutablePointer<BlockMeta>
    /// The tokens of every indexed block, `blockTokens` per meta index: node edges need no arrays.
    let arena: UnsafeMutablePointer<Int32>
    /// Two entries: hot, cold.
    let tiers: UnsafeMutablePointer<TierState>
    /// Prompt tree nodes; node 0 is the root. Every other node holds at least one block, so
    /// `totalBlocks + 1` slots always suffice and the storage never grows.
    let nodes: UnsafeMutablePointer<TreeNode>
    let nodeFreeStack: UnsafeMutablePointer<Int32>
    var nodeFreeCount: Int32
    /// Child lookup: the chained hash of a node's first block → the node. Keyed by content rather
    /// than by parent, so splitting a node never rekeys its children.
    var children: [UInt64: Int32]
    /// A logical clock: one tick per match or insert, stored as nodes' last access.
    var clock: UInt64 = 0
    /// Ticks once per block entering an LRU list (``BlockMeta/stamp``).
    var lruClock: UInt64 = 0
    /// How many times each pinned prefix (by the hash of its last block) was pinned, so that an
    /// unpin releases exactly what its pin covered.
    var pinRecords: [UInt64: Int] = [:]
    var totals = Totals()

    // Event machinery (see MemPool+Events.swift).
    var eventsActive = false
    var handlers: [(id: Int, handler: (MemPoolEvent) -> Void)] = []
    var streams: [(id: Int, continuation: AsyncStream<MemPoolEvent>.Continuation)] = []
    var nextSubscriptionID = 0
    var pendingKind: PendingEventKind? = nil
    var pendingHashes: [PrefixHash] = []

    // Peer tier (see MemPool+Peers.swift).
    /// Most blocks, both tiers, that may hold peers' prefixes (``MemPoolConfig/peerShare``).
    public let guestLimit: Int
    /// Own blocks' bytes copied out as they are evicted, until a spill order takes or overwrites
    /// them; nil without a peer tier.
    let staging: SpillStaging?

    /// Creates a pool, reserving both tiers up front.
    /// - Throws: ``MemPoolError/invalidConfig(_:)`` for impossible sizes,
    ///   ``MemPoolError/outOfMemory(tier:bytes:)`` or ``MemPoolError/coldFile(path:operation:errno:)``.
    public init(_ config: MemPoolConfig) throws(MemPoolError) {
        guard config.blockTokens >= 1 else { throw .invalidConfig("blockTokens must be at least 1") }
        guard config.blockBytes >= 1 else { throw .invalidConfig("blockBytes must be at least 1") }
        guard config.hotBlocks >= 1 else { throw .invalidConfig("the hot tier needs at least 1 block") }
        guard config.coldBlocks >= 0 else { throw .invalidConfig("coldBlocks must not be negative") }
        // Handles are 31-bit slots and the node table has one more entry than there are blocks.
        guard config.hotBlocks < Int(Int32.max) / 2, config.coldBlocks < Int(Int32.max) / 2 else {
            throw .invalidConfig("at most \(Int32.max / 2 - 1) blocks per tier")
        }
        let (hotBytes, o1) = config.hotBlocks.multipliedReportingOverflow(by: config.blockBytes)
        let (_, o2) = config.coldBlocks.multipliedReportingOverflow(by: config.blockBytes)
        guard !o1, !o2 else { throw .invalidConfig("tier size overflows") }

        self.config = config
        blockTokens = config.blockTokens
        blockBytes = config.blockBytes
        hotBlocks = config.hotBlocks
        coldBlocks = config.coldBlocks
        hotCount32 = Int32(config.hotBlocks)
        hotBase = try allocateTierArea(bytes: hotBytes, tier: .hot)
        do throws(MemPoolError) {
            cold = try ColdStorage(blockBytes: config.blockBytes, capacity: config.coldBlocks,
                                   filePath: config.coldFilePath)
        } catch {
            freeTierArea(hotBase)
            throw error
        }

        let total = config.totalBlocks
        meta = .allocate(capacity: total)
        meta.initialize(repeating: BlockMeta(), count: total)
        arena = .allocate(capacity: total * config.blockTokens)
        tiers = .allocate(capacity: 2)
        for (t, (base, cap)) in [(0, config.hotBlocks), (config.hotBlocks, config.coldBlocks)].enumerated() {
            let stack = UnsafeMutablePointer<Int32>.allocate(capacity: Swift.max(cap, 1))
            // Descending, so that pops hand out ascending slots: tests and traces read better.
            for k in 0..<cap { stack[k] = Int32(base + cap - 1 - k) }
            (tiers + t).initialize(to: TierState(base: Int32(base), capacity: Int32(cap),
                                                 freeStack: stack, freeCount: Int32(cap)))
        }
        nodes = .allocate(capacity: total + 1)
        nodes.initialize(repeating: TreeNode(), count: total + 1)
        nodeFreeStack = .allocate(capacity: total + 1)
        for k in 0..<total { nodeFreeStack[k] = Int32(total - k) }
        nodeFreeCount = Int32(total)
        children = [:]
        children.reserveCapacity(Swift.min(total, 1 << 20))
        guestLimit = Int(Double(total) * Swift.min(Swift.max(config.peerShare, 0), 1))
        staging = config.spillStagingBlocks > 0
            ? SpillStaging(capacity: config.spillStagingBlocks, blockBytes: config.blockBytes) : nil
    }

    deinit {
        for s in streams { s.continuation.finish() }
        freeTierArea(hotBase)
        meta.deallocate()
        arena.deallocate()
        tiers[0].freeStack.deallocate()
        tiers[1].freeStack.deallocate()
        tiers.deallocate()
        nodes.deallocate()
        nodeFreeStack.deallocate()
    }

    /// Counts of both tiers and running totals.
    public var stats: MemPoolStats {
        func tier(_ t: Int) -> TierStats {
            let s = tiers[t]
            return TierStats(capacity: Int(s.capacity), free: Int(s.freeCount), used: Int(s.used),
                             cached: Int(s.cached), evictable: Int(s.lruCount), guest: Int(s.guests))
        }
        return MemPoolStats(
            hot: tier(0), cold: tier(1), nodes: Int(Int32(config.totalBlocks) - nodeFreeCount),
            indexedBlocks: totals.indexed, evictions: totals.evictions, demotions: totals.demotions,
            swapOuts: totals.swapOuts, swapIns: totals.swapIns, deletions: totals.deletions,
            matches: totals.matches, matchedBlocks: totals.matchedBlocks, insertedBlocks: totals.inserted,
            invalidCalls: totals.invalidCalls, ioErrors: totals.ioErrors, droppedEvents: totals.droppedEvents,
            guestInserted: totals.guestInserted, guestEvicted: totals.guestEvicted,
            stagedBlocks: totals.staged, spilledBlocks: totals.spilled)
    }

    /// Free hot blocks plus those eviction could take: the most ``allocate(_:)`` can return now.
    public var availableHotBlocks: Int { Int(tiers[0].freeCount + tiers[0].lruCount) }

    // MARK: - Handles and meta indices

    /// The meta index of a handle, or nil if the handle is out of range.
    @inline(__always)
    func checkedIndex(_ id: BlockID) -> Int32? {
        let r = id.rawValue
        if r >= 0 { return r < hotCount32 ? r : nil }
        let slot = r & Int32.max
        return Int(slot) < coldBlocks ? hotCount32 + slot : nil
    }

    /// The meta index of a handle the caller guarantees is valid.
    @inline(__always)
    func index(_ id: BlockID) -> Int32 {
        id.rawValue >= 0 ? id.rawValue : hotCount32 + (id.rawValue & Int32.max)
    }

    /// The handle of a meta index.
    @inline(__always)
    func handle(_ i: Int32) -> BlockID {
        i < hotCount32 ? BlockID(rawValue: i) : BlockID(rawValue: (i - hotCount32) | Int32.min)
    }

    /// 0 for hot, 1 for cold.
    @inline(__always)
    func tierIndex(_ i: Int32) -> Int { i < hotCount32 ? 0 : 1 }

    /// The tokens stored for a meta index.
    @inline(__always)
    func tokens(_ i: Int32) -> UnsafeMutablePointer<Int32> { arena + Int(i) * blockTokens }

    @inline(__always)
    func hotAddress(_ i: Int32) -> UnsafeMutableRawPointer { hotBase + Int(i) * blockBytes }

    // MARK: - Free lists and LRU lists

    @inline(__always)
    func pushFree(_ i: Int32) {
        let t = tierIndex(i)
        if meta[Int(i)].guest {
            meta[Int(i)].guest = false
            tiers[t].guests -= 1
        }
        tiers[t].freeStack[Int(tiers[t].freeCount)] = i
        tiers[t].freeCount += 1
    }

    @inline(__always)
    func popFree(_ t: Int) -> Int32 {
        tiers[t].freeCount -= 1
        return tiers[t].freeStack[Int(tiers[t].freeCount)]
    }

    /// Appends at the most recently used end of the block's segment: a peer's block goes to the
    /// end of the leading guest segment, so every guest is evicted before any own block.
    @inline(__always)
    func lruAppend(_ i: Int32) {
        let t = tierIndex(i)
        meta[Int(i)].inLRU = true
        meta[Int(i)].stamp = lruClock
        lruClock &+= 1
        tiers[t].lruCount += 1
        if meta[Int(i)].guest {
            let g = tiers[t].guestTail
            let next = g >= 0 ? meta[Int(g)].lruNext : tiers[t].lruHead
            meta[Int(i)].lruPrev = g
            meta[Int(i)].lruNext = next
            if g >= 0 { meta[Int(g)].lruNext = i } else { tiers[t].lruHead = i }
            if next >= 0 { meta[Int(next)].lruPrev = i } else { tiers[t].lruTail = i }
            tiers[t].guestTail = i
            tiers[t].guestEvictable += 1
            return
        }
        let tail = tiers[t].lruTail
        meta[Int(i)].lruPrev = tail
        meta[Int(i)].lruNext = -1
        if tail >= 0 { meta[Int(tail)].lruNext = i } else { tiers[t].lruHead = i }
        tiers[t].lruTail = i
    }

    @inline(__always)
    func lruRemove(_ i: Int32) {
        let t = tierIndex(i)
        if meta[Int(i)].guest {
            if tiers[t].guestTail == i { tiers[t].guestTail = meta[Int(i)].lruPrev }
            tiers[t].guestEvictable -= 1
        }
        let p = meta[Int(i)].lruPrev, n = meta[Int(i)].lruNext
        if p >= 0 { meta[Int(p)].lruNext = n } else { tiers[t].lruHead = n }
        if n >= 0 { meta[Int(n)].lruPrev = p } else { tiers[t].lruTail = p }
        meta[Int(i)].inLRU = false
        meta[Int(i)].lruPrev = -1
        meta[Int(i)].lruNext = -1
        tiers[t].lruCount -= 1
    }

    /// Marks a cached block as just used.
    @inline(__always)
    func lruTouch(_ i: Int32) {
        if meta[Int(i)].inLRU {
            lruRemove(i)
            lruAppend(i)
        }
    }

    /// Whether a block's node is pinned (blocks outside the index are not).
    @inline(__always)
    func isPinned(_ i: Int32) -> Bool {
        let n = meta[Int(i)].node
        return n >= 0 && nodes[Int(n)].pins > 0
    }

    // MARK: - Reference counts

    /// Adds a reference; false (and nothing changes) when the block is free.
    @inline(__always)
    func incRef(_ i: Int32) -> Bool {
        let t = tierIndex(i)
        if meta[Int(i)].refs == 0 {
            // A free block is owned by the free list; taking it here would hand it out twice.
            guard meta[Int(i)].node >= 0 else { return false }
            if meta[Int(i)].inLRU { lruRemove(i) }
            tiers[t].cached -= 1
            tiers[t].used += 1
        }
        meta[Int(i)].refs += 1
        return true
    }

    /// Drops a reference; false (and nothing changes) when the block has none.
    @inline(__always)
    func decRef(_ i: Int32) -> Bool {
        guard meta[Int(i)].refs > 0 else { return false }
        meta[Int(i)].refs -= 1
        if meta[Int(i)].refs == 0 {
            let t = tierIndex(i)
            tiers[t].used -= 1
            if meta[Int(i)].node >= 0 {
                tiers[t].cached += 1
                if !isPinned(i) { lruAppend(i) }
            } else {
                pushFree(i)
            }
        }
        return true
    }
}

/// Bookkeeping of one block (hot or cold) at its meta index.
struct BlockMeta {
    var refs: Int32 = 0
    /// The prompt-tree node holding the block; -1 when it is not indexed.
    var node: Int32 = -1
    /// Neighbours inside the node's edge.
    var chainPrev: Int32 = -1
    var chainNext: Int32 = -1
    var lruPrev: Int32 = -1
    var lruNext: Int32 = -1
    var inLRU = false
    /// Held for a peer (the peer tier): evicted before any own block, never spilled again.
    var guest = false
    /// Recency: the pool's LRU clock when the block last entered the LRU list.
    var stamp: UInt64 = 0
    /// The chained prefix hash through this block; meaningful while indexed.
    var hash: UInt64 = 0
}

/// Free list and LRU list of one tier.
struct TierState {
    var base: Int32
    var capacity: Int32
    var freeStack: UnsafeMutablePointer<Int32>
    var freeCount: Int32
    /// Least recently used end: the next eviction victim.
    var lruHead: Int32 = -1
    var lruTail: Int32 = -1
    var lruCount: Int32 = 0
    var used: Int32 = 0
    var cached: Int32 = 0
    /// The last guest block of the LRU list: guests form its leading segment.
    var guestTail: Int32 = -1
    /// Guest blocks in the tier (held or cached), and those in the LRU list.
    var guests: Int32 = 0
    var guestEvictable: Int32 = 0
}

/// One prompt-tree node: an edge of one or more whole blocks, linked through `BlockMeta.chain*`.
struct TreeNode {
    var parent: Int32 = -1
    var first: Int32 = -1
    var last: Int32 = -1
    var count: Int32 = 0
    /// Blocks above the edge's first block.
    var depth: Int32 = 0
    var firstChild: Int32 = -1
    var nextSibling: Int32 = -1
    var prevSibling: Int32 = -1
    var childCount: Int32 = 0
    var pins: Int32 = 0
    /// The chained hash of the first block: the node's key in `MemPool.children`.
    var key: UInt64 = 0
    var hits: UInt64 = 0
    var lastAccess: UInt64 = 0
}

/// Running totals behind ``MemPoolStats``.
struct Totals {
    var indexed = 0
    var evictions = 0
    var demotions = 0
    var swapOuts = 0
    var swapIns = 0
    var deletions = 0
    var matches = 0
    var matchedBlocks = 0
    var inserted = 0
    var invalidCalls = 0
    var ioErrors = 0
    var droppedEvents = 0
    var guestInserted = 0
    var guestEvicted = 0
    var staged = 0
    var spilled = 0
}
