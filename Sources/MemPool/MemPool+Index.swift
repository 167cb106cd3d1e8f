/// The index API: a radix prompt tree over token ids at block granularity.
///
/// Each node's edge is one or more whole blocks; children are found through a table keyed by the
/// chained ``PrefixHash`` of their first block, and every candidate is confirmed by comparing
/// tokens. A prompt that diverges in the middle of an edge splits the edge at that block
/// boundary. Nodes are not merged back after evictions (as in SGLang); a leaf that grows by a
/// later insert is extended in place instead of getting a child, so a conversation's turns stay
/// one edge.
extension MemPool {
    /// The longest cached prefix of `tokens`, in whole blocks; a trailing partial block never
    /// matches. Marks the matched blocks as recently used and counts a hit on each node reached.
    ///
    /// The result is not protected: retain its blocks (``lock(_:)``) before the next call that
    /// may evict, i.e. any ``allocate(_:)``, ``swapIn(_:)`` or ``swapOut(_:)``.
    public func match(_ tokens: [Int32]) -> PrefixMatch {
        clock &+= 1
        totals.matches += 1
        var found: [BlockID] = []
        var lastNode: Int32 = -1
        let h = walkCachedPrefix(tokens) { node, block in
            if node != lastNode {
                nodes[Int(node)].hits &+= 1
                nodes[Int(node)].lastAccess = clock
                lastNode = node
            }
            // Reserved on the first hit only, so a miss allocates nothing.
            if found.isEmpty { found.reserveCapacity(tokens.count / blockTokens) }
            found.append(handle(block))
        }
        // Deepest first, so a prefix's deeper blocks stay older than its shallower ones.
        for id in found.reversed() { lruTouch(index(id)) }
        totals.matchedBlocks += found.count
        return PrefixMatch(blocks: found, tokenCount: found.count * blockTokens, hash: PrefixHash(value: h))
    }

    /// The one way to take a cached prefix into use: matches `tokens`, keeps at most
    /// `maxBlocks` leading blocks, retains them (the caller holds them from now on) and brings
    /// cold ones back to the hot tier, where the kernel reads them. Without hot room for the
    /// cold part, only the hot head is kept. Returns hot blocks, held by the caller.
    ///
    /// With `claim` (a request of this instance takes the prefix), blocks held for a peer become
    /// this instance's own; a peer's transfer into the peer tier passes false.
    public func acquirePrefix(_ tokens: [Int32], maxBlocks: Int, claim: Bool = true) -> [BlockID] {
        let match = self.match(tokens)
        var blocks = Array(match.blocks.prefix(max(0, maxBlocks)))
        retain(blocks)
        if claim { self.claim(blocks) }
        if let head = blocks.firstIndex(where: { $0.tier == .cold }) {
            if let hot = try? swapIn(blocks) {
                blocks = hot
            } else {
                release(Array(blocks[head...]))
                blocks.removeLast(blocks.count - head)
            }
        }
        return blocks
    }

    /// How many leading whole blocks of `tokens` are cached, without touching recency, hit
    /// counts or anything else: for ordering a queue by what each request would reuse.
    public func cachedBlockCount(_ tokens: [Int32]) -> Int {
        var n = 0
        _ = walkCachedPrefix(tokens) { _, _ in n += 1 }
        return n
    }

    /// Walks the prompt tree along `tokens`, calling `visit(node, block)` for every cached
    /// block of the longest cached prefix, in order; returns the prefix's chained hash.
    @inline(__always)
    func walkCachedPrefix(_ tokens: [Int32], _ visit: (Int32, Int32) -> Void) -> UInt64 {
        let bt = blockTokens
        let nb = tokens.count / bt
        var h = PrefixHash.root.value
        guard nb > 0 else { return h }
        tokens.withUnsafeBufferPointer { tp in
            let base = tp.baseAddress!
            var node: Int32 = 0, i = 0
            outer: while i < nb {
                let p = base + i * bt
                guard let child = lookupChild(node, PrefixHash.mix(h, p, bt), p) else { break }
                var b = nodes[Int(child)].first
                while true {
                    visit(child, b)
                    // Inside an edge the stored hashes are the chain; only node boundaries hash.
                    h = meta[Int(b)].hash
                    i += 1
                    let nx = meta[Int(b)].chainNext
                    if nx < 0 { break }
                    if i == nb || !tokensEqual(nx, base + i * bt) { break outer }
                    b = nx
                }
                node = child
            }
        }
        return h
    }

    /// Inserts the whole blocks of a prompt: block `i` of `tokens` is held in `blocks[i]`.
    /// `min(tokens.count / blockTokens, blocks.count)` blocks are considered; a trailing partial
    /// block (and its block id, if given) is ignored.
    ///
    /// Where a prefix is already cached by other blocks, the caller's blocks there are reported
    /// as ``InsertResult/duplicates`` (the cached ones stay canonical, as in vLLM), except that a
    /// hot caller block replaces a cold cached copy — the index prefers the copy the kernel can
    /// read. New blocks must be held by the caller (allocated or retained) and not indexed
    /// elsewhere; the first block that is not ends the insertion. Indexing takes no reference:
    /// when the caller releases its blocks they stay cached.
    @discardableResult
    public func insert(tokens: [Int32], blocks: [BlockID]) -> InsertResult {
        defer { flushEvents() }
        clock &+= 1
        let bt = blockTokens
        let nb = Swift.min(tokens.count / bt, blocks.count)
        var result = InsertResult(blocks: [], duplicates: [], insertedBlocks: 0, indexedBlocks: 0)
        guard nb > 0 else { return result }
        result.blocks.reserveCapacity(nb)
        tokens.withUnsafeBufferPointer { tp in
            blocks.withUnsafeBufferPointer { bp in
                insertWalk(tp.baseAddress!, bp, nb, &result)
            }
        }
        // Positions the walk did not index keep the caller's own blocks.
        for k in result.blocks.count..<nb { result.blocks.append(blocks[k]) }
        return result
    }

    private func insertWalk(_ base: UnsafePointer<Int32>, _ bp: UnsafeBufferPointer<BlockID>, _ nb: Int,
                            _ result: inout InsertResult) {
        let bt = blockTokens
        var node: Int32 = 0, i = 0
        var h = PrefixHash.root.value
        var canAdd = true
        walk: while i < nb {
            let p = base + i * bt
            let key = PrefixHash.mix(h, p, bt)
            guard let child = lookupChild(node, key, p) else {
                canAdd = children[key] == nil
                break
            }
            nodes[Int(child)].lastAccess = clock
            var b = nodes[Int(child)].first
            while true {
                let cur = adopt(position: i, cached: b, offered: bp[i], &result)
                h = meta[Int(cur)].hash
                i += 1
                let nx = meta[Int(cur)].chainNext
                if nx < 0 { break }
                if i == nb { break walk }
                if !tokensEqual(nx, base + i * bt) {
                    // Split only when the new branch can actually be added below the split point.
                    canAdd = isInsertable(bp[i]) && split(child, at: nx) != nil
                    node = child
                    break walk
                }
                b = nx
            }
            node = child
        }
        // Deepest first, as in match.
        for k in stride(from: result.blocks.count - 1, through: 0, by: -1) { lruTouch(index(result.blocks[k])) }
        result.indexedBlocks = i
        if canAdd && i < nb { appendNew(under: node, base, bp, from: i, to: nb, parentHash: h, &result) }
    }

    /// Handles prompt block `position`, already cached as `cached`: keeps, promotes or reports a
    /// duplicate. Returns the block now indexed there.
    private func adopt(position: Int, cached: Int32, offered: BlockID, _ result: inout InsertResult) -> Int32 {
        let mine = checkedIndex(offered)
        if mine == cached {
            result.blocks.append(offered)
            return cached
        }
        if let mine, cached >= hotCount32, mine < hotCount32, meta[Int(mine)].refs > 0, meta[Int(mine)].node < 0 {
            let hash = meta[Int(cached)].hash
            replaceInIndex(old: cached, new: mine)
            totals.swapIns += 1
            note(.swappedIn, hash)
            result.blocks.append(offered)
            return mine
        }
        result.blocks.append(handle(cached))
        result.duplicates.append(position)
        return cached
    }

    private func isInsertable(_ id: BlockID) -> Bool {
        guard let i = checkedIndex(id) else { return false }
        return meta[Int(i)].refs > 0 && meta[Int(i)].node < 0
    }

    /// Indexes prompt blocks `from..<to` below `node`: extending `node`'s edge when it is an
    /// unpinned leaf, else as a new child.
    private func appendNew(under node: Int32, _ base: UnsafePointer<Int32>, _ bp: UnsafeBufferPointer<BlockID>,
                           from: Int, to: Int, parentHash: UInt64, _ result: inout InsertResult) {
        let bt = blockTokens
        var h = parentHash
        var n: Int32 = -1
        var last: Int32 = -1
        if node != 0 && nodes[Int(node)].childCount == 0 && nodes[Int(node)].pins == 0 {
            n = node
            last = nodes[Int(node)].last
        }
        var k = from
        while k < to {
            guard let mi = checkedIndex(bp[k]), meta[Int(mi)].refs > 0, meta[Int(mi)].node < 0 else { break }
            let p = base + k * bt
            h = PrefixHash.mix(h, p, bt)
            if n < 0 {
                guard children[h] == nil else { break }
                n = newNode(parent: node, first: mi, depth: Int32(k), key: h)
                meta[Int(mi)].chainPrev = -1
            } else {
                meta[Int(last)].chainNext = mi
                meta[Int(mi)].chainPrev = last
                nodes[Int(n)].last = mi
                nodes[Int(n)].count += 1
            }
            meta[Int(mi)].node = n
            meta[Int(mi)].chainNext = -1
            meta[Int(mi)].hash = h
            tokens(mi).update(from: p, count: bt)
            last = mi
            result.blocks.append(bp[k])
            k += 1
        }
        let added = k - from
        guard added > 0 else { return }
        nodes[Int(n)].lastAccess = clock
        result.insertedBlocks = added
        result.indexedBlocks = k
        totals.indexed += added
        totals.inserted += added
        if eventsActive { publishInserted(from: from, to: k, base: base, blocks: bp, parentHash: parentHash) }
    }

    /// Inserts like ``insert(tokens:blocks:)``, then swaps the duplicates in `table` for the
    /// cached blocks: each cached block is retained and the caller's duplicate released, so the
    /// table stays a list of blocks the caller holds. With `claim`, adopted blocks that were held
    /// for a peer become this instance's own (see ``acquirePrefix(_:maxBlocks:claim:)``).
    @discardableResult
    public func insertAndAdopt(tokens: [Int32], table: inout [BlockID], claim: Bool = true) -> InsertResult {
        let r = insert(tokens: tokens, blocks: table)
        for k in r.duplicates {
            let cached = r.blocks[k]
            guard incRef(index(cached)) else { continue }
            if claim { self.claim([cached]) }
            let released = checkedIndex(table[k]).map { decRef($0) } ?? false
            if !released { totals.invalidCalls += 1 }
            table[k] = cached
        }
        return r
    }

    /// Protects a match's blocks from eviction by retaining them (the locking model of
    /// ``MemPool``); a sequence that adopts them then owns one reference each.
    public func lock(_ match: PrefixMatch) { retain(match.blocks) }

    /// Undoes ``lock(_:)``: releases the match's blocks.
    public func unlock(_ match: PrefixMatch) { release(match.blocks) }

    /// Forgets `tokens`: every cached prompt that extends all of its whole blocks, and then the
    /// blocks of `tokens` itself from the end backwards, as long as no other cached prompt
    /// shares them (a radix tree's delete with pruning). Held and pinned blocks stay, and so does
    /// everything above them: a kept block keeps its whole path. When `tokens` is only partly
    /// cached, nothing beyond its match is touched.
    /// - Returns: the blocks dropped from the index.
    @discardableResult
    public func delete(tokens: [Int32]) -> Int {
        defer { flushEvents() }
        let w = tokens.withUnsafeBufferPointer { walk($0) }
        guard w.last >= 0 else { return 0 }
        let top = meta[Int(w.last)].node
        var dropped = 0
        if w.matched == tokens.count / blockTokens {
            // Leaves first, so that a node is looked at after everything below it.
            for d in descendants(of: top).reversed() { dropped += dropUnheld(d, downTo: nodes[Int(d)].first).dropped }
            let after = meta[Int(w.last)].chainNext
            if after >= 0 { dropped += dropUnheld(top, downTo: after).dropped }
        }
        // Then upwards through the prompt's own blocks, unless something below the match stayed.
        var n = top
        guard nodes[Int(n)].last == w.last else { return dropped }
        while n != 0 {
            let parent = nodes[Int(n)].parent
            let r = dropUnheld(n, downTo: nodes[Int(n)].first)
            dropped += r.dropped
            guard r.removed else { break }
            n = parent
        }
        return dropped
    }

    /// Drops the blocks of a childless, unpinned node from the end of its edge back to `stop`,
    /// ending early at a held block; removes the node when its first block goes.
    private func dropUnheld(_ n: Int32, downTo stop: Int32) -> (dropped: Int, removed: Bool) {
        guard nodes[Int(n)].childCount == 0, nodes[Int(n)].pins == 0 else { return (0, false) }
        var x = nodes[Int(n)].last
        var count: Int32 = 0
        while meta[Int(x)].refs == 0 {
            let prev = meta[Int(x)].chainPrev
            unindex(x, .deleted)
            count += 1
            if x == stop {
                x = prev
                break
            }
            x = prev
        }
        guard count > 0 else { return (0, false) }
        if x < 0 {
            removeNode(n)
            return (Int(count), true)
        }
        nodes[Int(n)].last = x
        nodes[Int(n)].count -= count
        meta[Int(x)].chainNext = -1
        return (Int(count), false)
    }

    /// Pins the longest cached prefix of `tokens` (whole blocks): its blocks are never evicted
    /// nor deleted, and hot ones stay hot, until ``unpin(tokens:)``. Pins nest. The last node is
    /// split where the prefix ends inside its edge, so that pins cover whole nodes.
    /// - Returns: tokens pinned (0 when nothing of the prompt is cached).
    @discardableResult
    public func pin(tokens: [Int32]) -> Int {
        let w = tokens.withUnsafeBufferPointer { walk($0) }
        guard w.matched > 0 else { return 0 }
        if w.partial {
            let n = w.path[w.path.count - 1]
            guard split(n, at: meta[Int(w.last)].chainNext) != nil else { return 0 }
        }
        for n in w.path {
            nodes[Int(n)].pins += 1
            guard nodes[Int(n)].pins == 1 else { continue }
            var x = nodes[Int(n)].first
            while x >= 0 {
                if meta[Int(x)].inLRU { lruRemove(x) }
                x = meta[Int(x)].chainNext
            }
        }
        pinRecords[meta[Int(w.last)].hash, default: 0] += 1
        return w.matched * blockTokens
    }

    /// Undoes one ``pin(tokens:)`` of the longest prefix of `tokens` that was pinned — the same
    /// blocks that pin covered, even if more of the prompt is cached by now. Blocks no longer
    /// pinned or held become evictable, the prefix's deepest blocks first.
    /// - Returns: tokens unpinned (0 when no prefix of `tokens` is pinned).
    @discardableResult
    public func unpin(tokens: [Int32]) -> Int {
        let w = tokens.withUnsafeBufferPointer { walk($0) }
        // Pins end at node boundaries, so the pinned prefix is the path up to some node's end.
        var end = w.path.count
        while end > 0 {
            let n = w.path[end - 1]
            let complete = !(w.partial && end == w.path.count)
            if complete, let k = pinRecords[meta[Int(nodes[Int(n)].last)].hash] {
                if k == 1 { pinRecords.removeValue(forKey: meta[Int(nodes[Int(n)].last)].hash) }
                else { pinRecords[meta[Int(nodes[Int(n)].last)].hash] = k - 1 }
                break
            }
            end -= 1
        }
        guard end > 0 else { return 0 }
        for n in w.path[0..<end].reversed() {
            nodes[Int(n)].pins -= 1
            guard nodes[Int(n)].pins == 0 else { continue }
            var x = nodes[Int(n)].last
            while x >= 0 {
                if meta[Int(x)].refs == 0 { lruAppend(x) }
                x = meta[Int(x)].chainPrev
            }
        }
        let last = w.path[end - 1]
        return Int(nodes[Int(last)].depth + nodes[Int(last)].count) * blockTokens
    }
}
