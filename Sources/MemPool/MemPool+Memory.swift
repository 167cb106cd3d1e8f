/// The memory API: allocation, reference counts, tier moves and block bytes.
///
/// Running out of blocks is an answer (`nil`), never a crash: the scheduler preempts, swaps or
/// waits. Calls with handles that are out of range, free, or not held are ignored and counted in
/// ``MemPoolStats/invalidCalls`` — the module is built without runtime checks, so it validates
/// what callers pass instead of trusting it.
extension MemPool {
    /// Allocates `n` hot blocks, each with a reference count of 1 owned by the caller.
    ///
    /// Free blocks go first; then the least recently used evictable cached blocks are evicted:
    /// moved to the cold tier (which drops its own oldest unreferenced block when full) or, when
    /// the cold tier cannot take them, dropped from the index. Blocks come back in ascending
    /// order of availability, not of id.
    /// - Returns: the blocks, or nil — with nothing evicted — when fewer than `n` hot blocks are
    ///   free or evictable (see ``availableHotBlocks``).
    public func allocate(_ n: Int) -> [BlockID]? {
        guard n > 0 else { return n == 0 ? [] : nil }
        guard n <= Int(tiers[0].freeCount) + Int(tiers[0].lruCount) else { return nil }
        if Int(tiers[0].freeCount) < n {
            while Int(tiers[0].freeCount) < n && tiers[0].lruHead >= 0 { evictOneHot() }
            flushEvents()
        }
        tiers[0].used += Int32(n)
        return [BlockID](unsafeUninitializedCapacity: n) { buf, count in
            for k in 0..<n {
                let i = popFree(0)
                meta[Int(i)].refs = 1
                buf[k] = BlockID(rawValue: i)
            }
            count = n
        }
    }

    /// Adds one reference to each block: a sequence sharing them, or adopting cached blocks
    /// from a match (a cached block stops being evictable). Blocks of either tier may be held.
    /// - Returns: false if some handle was free or unknown (it was skipped).
    @discardableResult
    public func retain(_ blocks: [BlockID]) -> Bool {
        var ok = true
        for id in blocks {
            guard let i = checkedIndex(id), incRef(i) else {
                ok = false
                totals.invalidCalls += 1
                continue
            }
        }
        return ok
    }

    /// Drops one reference from each block. A block left with none stays cached (evictable, at
    /// the most recently used end) if it is indexed, and returns to the free list otherwise.
    /// Pass a block table in its order: it is released tail first (vLLM's habit), so a prompt's
    /// deeper blocks are evicted before the shallower ones other prompts share.
    /// - Returns: false if some handle had no reference or was unknown (it was skipped).
    @discardableResult
    public func release(_ blocks: [BlockID]) -> Bool {
        var ok = true
        for id in blocks.reversed() {
            guard let i = checkedIndex(id), decRef(i) else {
                ok = false
                totals.invalidCalls += 1
                continue
            }
        }
        return ok
    }

    /// The reference count of a block (0 for cached, free or unknown blocks).
    public func refCount(_ id: BlockID) -> Int {
        guard let i = checkedIndex(id) else { return 0 }
        return Int(meta[Int(i)].refs)
    }

    /// Whether the block is in the prompt tree.
    public func isIndexed(_ id: BlockID) -> Bool {
        guard let i = checkedIndex(id) else { return false }
        return meta[Int(i)].node >= 0
    }

    /// Moves up to `n` of the least recently used evictable hot blocks to the cold tier; they
    /// stay cached and the index points at their cold copies. The cold tier makes room by
    /// dropping its own least recently used unreferenced blocks.
    /// - Returns: the blocks moved; fewer than `n` when the hot tier has no more evictable blocks
    ///   or the cold tier no room.
    @discardableResult
    public func swapOut(_ n: Int) -> Int {
        defer { flushEvents() }
        var moved = 0
        loop: while moved < n, tiers[0].lruHead >= 0 {
            switch demote(tiers[0].lruHead) {
            case .moved: moved += 1
            case .dropped: continue
            case .failed: break loop
            }
        }
        totals.swapOuts += moved
        return moved
    }

    /// Moves a preempted sequence's hot blocks to the cold tier, transferring its references.
    /// Blocks that others also hold (freeing them would free nothing), pinned blocks, and cold
    /// blocks stay where they are. Indexed blocks stay cached: the index follows them.
    /// - Returns: the sequence's new table (same length); pass it to ``swapIn(_:)`` to resume.
    public func swapOut(blocks: [BlockID]) -> [BlockID] {
        defer { flushEvents() }
        var out = blocks
        for k in blocks.indices {
            guard let i = checkedIndex(blocks[k]), i < hotCount32, meta[Int(i)].refs == 1, !isPinned(i) else { continue }
            guard let c = takeColdSlot() else { break }
            let err = cold.write(slot: Int(c - hotCount32), from: hotAddress(i))
            guard err == 0 else {
                totals.ioErrors += 1
                pushFree(c)
                continue
            }
            meta[Int(c)].refs = 1
            tiers[1].used += 1
            if meta[Int(i)].node >= 0 {
                let hash = meta[Int(i)].hash
                replaceInIndex(old: i, new: c)
                note(.swappedOut, hash)
            }
            meta[Int(i)].refs = 0
            tiers[0].used -= 1
            pushFree(i)
            out[k] = handle(c)
            totals.swapOuts += 1
        }
        return out
    }

    /// Brings the cold blocks of a table back to the hot tier, transferring the caller's
    /// reference from each cold block to its new hot copy; hot entries pass through. The index
    /// follows the moved blocks. Allocating the hot blocks may evict, as ``allocate(_:)`` does.
    /// - Returns: the table with every block hot, or nil — with nothing changed — when not enough
    ///   hot blocks can be had.
    /// - Throws: ``MemPoolError/invalidBlock(_:)`` for a cold entry the caller does not hold;
    ///   ``MemPoolError/io(operation:errno:)`` when the cold file cannot be read (nothing changed).
    public func swapIn(_ blocks: [BlockID]) throws(MemPoolError) -> [BlockID]? {
        defer { flushEvents() }
        var coldAt: [Int] = []
        for k in blocks.indices where blocks[k].rawValue < 0 {
            guard let c = checkedIndex(blocks[k]), meta[Int(c)].refs > 0 else { throw .invalidBlock(blocks[k]) }
            coldAt.append(k)
        }
        guard !coldAt.isEmpty else { return blocks }
        guard let fresh = allocate(coldAt.count) else { return nil }
        // Read everything before changing anything, so a failed read leaves the old table valid.
        for (j, k) in coldAt.enumerated() {
            let err = cold.read(slot: blocks[k].slot, into: hotAddress(fresh[j].rawValue))
            if err != 0 {
                totals.ioErrors += 1
                release(fresh)
                throw .io(operation: "read", errno: err)
            }
        }
        var out = blocks
        for (j, k) in coldAt.enumerated() {
            let c = index(blocks[k]), h = fresh[j].rawValue
            if meta[Int(c)].node >= 0 {
                let hash = meta[Int(c)].hash
                replaceInIndex(old: c, new: h)
                note(.swappedIn, hash)
            }
            _ = decRef(c)
            out[k] = fresh[j]
            totals.swapIns += 1
        }
        return out
    }

    /// The address of a hot block, where the attention kernel reads and writes it.
    /// The handle must be a hot block of this pool (not checked: this is on the kernel's path).
    @inline(__always)
    public func blockPointer(_ id: BlockID) -> UnsafeMutableRawPointer {
        hotBase + Int(id.rawValue) * blockBytes
    }

    /// The address of a block of either tier, or nil for an unknown handle or a cold tier kept in
    /// a file.
    public func address(of id: BlockID) -> UnsafeMutableRawPointer? {
        guard let i = checkedIndex(id) else { return nil }
        return i < hotCount32 ? hotAddress(i) : cold.pointer(Int(i - hotCount32))
    }

    /// Copies a block's `blockBytes` bytes out, from either tier (a transfer to a peer, a test).
    public func readBlock(_ id: BlockID, into dst: UnsafeMutableRawPointer) throws(MemPoolError) {
        guard let i = checkedIndex(id) else { throw .invalidBlock(id) }
        if i < hotCount32 {
            dst.copyMemory(from: hotAddress(i), byteCount: blockBytes)
            return
        }
        let err = cold.read(slot: Int(i - hotCount32), into: dst)
        guard err == 0 else {
            totals.ioErrors += 1
            throw .io(operation: "read", errno: err)
        }
    }

    /// Copies `blockBytes` bytes into a block of either tier (a transfer from a peer, a test).
    public func writeBlock(_ id: BlockID, from src: UnsafeRawPointer) throws(MemPoolError) {
        guard let i = checkedIndex(id) else { throw .invalidBlock(id) }
        if i < hotCount32 {
            hotAddress(i).copyMemory(from: src, byteCount: blockBytes)
            return
        }
        let err = cold.write(slot: Int(i - hotCount32), from: src)
        guard err == 0 else {
            totals.ioErrors += 1
            throw .io(operation: "write", errno: err)
        }
    }

    // MARK: - Eviction

    /// Frees at least one hot block: the LRU head moves to the cold tier, or is dropped.
    func evictOneHot() {
        let v = tiers[0].lruHead
        // A peer's block moves to the cold tier only where it displaces no own block.
        let coldTakes = !meta[Int(v)].guest || tiers[1].freeCount > 0
            || (tiers[1].lruHead >= 0 && meta[Int(tiers[1].lruHead)].guest)
        if coldBlocks > 0 && coldTakes {
            switch demote(v) {
            case .moved:
                totals.demotions += 1
                return
            case .dropped: return
            case .failed: break
            }
        }
        truncate(at: v, .evicted)
    }

    enum DemoteOutcome { case moved, dropped, failed }

    /// Moves cached hot block `v` to a cold slot in place in the index.
    func demote(_ v: Int32) -> DemoteOutcome {
        guard let c = takeColdSlot() else { return .failed }
        // Making room can drop a cold ancestor, and `v` with it.
        if meta[Int(v)].node < 0 {
            pushFree(c)
            return .dropped
        }
        let err = cold.write(slot: Int(c - hotCount32), from: hotAddress(v))
        guard err == 0 else {
            totals.ioErrors += 1
            pushFree(c)
            return .failed
        }
        let hash = meta[Int(v)].hash
        replaceInIndex(old: v, new: c)
        note(.swappedOut, hash)
        return .moved
    }

    /// A cold slot off the free list, after dropping the cold tier's least recently used
    /// unreferenced block if there is no free one. Nil when every cold block is held or pinned.
    func takeColdSlot() -> Int32? {
        if tiers[1].freeCount == 0 {
            let h = tiers[1].lruHead
            guard h >= 0 else { return nil }
            truncate(at: h, .evicted)
        }
        return popFree(1)
    }
}
