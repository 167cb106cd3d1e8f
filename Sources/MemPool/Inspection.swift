/// One cached block of the prompt tree, by prefix hashes (instance-independent).
public struct CachedBlockEntry: Sendable, Hashable, Codable {
    /// The prefix this block extends (``PrefixHash/root`` for a prompt's first block).
    public var parent: PrefixHash
    /// The prefix through this block.
    public var hash: PrefixHash
    public var tier: BlockTier

    public init(parent: PrefixHash, hash: PrefixHash, tier: BlockTier) {
        self.parent = parent
        self.hash = hash
        self.tier = tier
    }
}

/// A read-only copy of the prompt tree: what the pool caches, where, and how it is used.
public struct MemPoolSnapshot: Sendable, Hashable {
    /// One node of the prompt tree (the root is not listed).
    public struct Node: Sendable, Hashable {
        /// The node's id, stable until the node is split, evicted or deleted.
        public var id: Int
        /// The parent's id; nil for a child of the root.
        public var parent: Int?
        /// Blocks above this node's edge: its first block is block `startBlock` of the prompt.
        public var startBlock: Int
        /// The edge's tokens (`blocks.count * blockTokens`).
        public var tokens: [Int32]
        /// The edge's blocks, in prompt order; their tiers are `blocks.map(\.tier)`.
        public var blocks: [BlockID]
        /// The chained hash of the prefix through the edge's last block.
        public var hash: PrefixHash
        /// Matches that reached this node.
        public var hits: UInt64
        /// The pool's logical clock (one tick per match or insert) at the last match or insert
        /// that reached this node.
        public var lastAccess: UInt64
        /// Pins on this node (nonzero: never evicted).
        public var pins: Int
        /// Edge blocks with a reference count above zero.
        public var heldBlocks: Int

        /// The tier of each block.
        public var tiers: [BlockTier] { blocks.map(\.tier) }
    }

    /// Tokens per block.
    public var blockTokens: Int
    /// Every node, parents before children.
    public var nodes: [Node]
    /// The pool's counts when the snapshot was taken.
    public var stats: MemPoolStats
    /// The pool's logical clock when the snapshot was taken.
    public var clock: UInt64

    /// The full token prefix that ends with `node`'s edge.
    public func prefixTokens(of node: Node) -> [Int32] {
        var byID: [Int: Int] = [:]
        for (k, n) in nodes.enumerated() { byID[n.id] = k }
        var chain: [Node] = [node]
        var p = node.parent
        while let id = p, let k = byID[id] {
            chain.append(nodes[k])
            p = nodes[k].parent
        }
        return chain.reversed().flatMap(\.tokens)
    }

    /// Nodes without children: each ends a distinct cached prompt.
    public var leaves: [Node] {
        let parents = Set(nodes.compactMap(\.parent))
        return nodes.filter { !parents.contains($0.id) }
    }

    /// The token arrays of the cached prompts (one per leaf); every prefix of them at a block
    /// boundary is cached too.
    public var cachedPrefixes: [[Int32]] { leaves.map { prefixTokens(of: $0) } }
}

extension MemPool {
    /// Copies the prompt tree out. O(cached blocks); meant for tools, tests and resynchronizing
    /// a global index, not for the scheduling loop.
    public func snapshot() -> MemPoolSnapshot {
        var out: [MemPoolSnapshot.Node] = []
        var stack: [Int32] = []
        var c = nodes[0].firstChild
        while c >= 0 {
            stack.append(c)
            c = nodes[Int(c)].nextSibling
        }
        while let n = stack.popLast() {
            let node = nodes[Int(n)]
            var blocks: [BlockID] = []
            var toks: [Int32] = []
            var held = 0
            var x = node.first
            while x >= 0 {
                blocks.append(handle(x))
                toks.append(contentsOf: UnsafeBufferPointer(start: tokens(x), count: blockTokens))
                if meta[Int(x)].refs > 0 { held += 1 }
                x = meta[Int(x)].chainNext
            }
            out.append(.init(id: Int(n), parent: node.parent == 0 ? nil : Int(node.parent),
                             startBlock: Int(node.depth), tokens: toks, blocks: blocks,
                             hash: PrefixHash(value: meta[Int(node.last)].hash), hits: node.hits,
                             lastAccess: node.lastAccess, pins: Int(node.pins), heldBlocks: held))
            var c = node.firstChild
            while c >= 0 {
                stack.append(c)
                c = nodes[Int(c)].nextSibling
            }
        }
        return MemPoolSnapshot(blockTokens: blockTokens, nodes: out, stats: stats, clock: clock)
    }

    /// Every cached block as the global scheduler indexes it: the chained hash of the prefix
    /// through it, its parent prefix's hash and its tier, parents before children. O(cached
    /// blocks), no hashing (the pool keeps the chain); what an instance sends as its snapshot.
    public func cachedBlockEntries() -> [CachedBlockEntry] {
        var out: [CachedBlockEntry] = []
        out.reserveCapacity(Int(totals.indexed))
        var stack: [(node: Int32, parentHash: UInt64)] = []
        var c = nodes[0].firstChild
        while c >= 0 {
            stack.append((c, PrefixHash.root.value))
            c = nodes[Int(c)].nextSibling
        }
        while let (n, parentHash) = stack.popLast() {
            var parent = parentHash
            var x = nodes[Int(n)].first
            while x >= 0 {
                let h = meta[Int(x)].hash
                out.append(CachedBlockEntry(parent: PrefixHash(value: parent), hash: PrefixHash(value: h), tier: handle(x).tier))
                parent = h
                x = meta[Int(x)].chainNext
            }
            var child = nodes[Int(n)].firstChild
            while child >= 0 {
                stack.append((child, parent))
                child = nodes[Int(child)].nextSibling
            }
        }
        return out
    }

    /// Checks every internal invariant: free lists, counts, LRU lists, tree links, child keys and
    /// the hash chain. O(blocks); for tests and debugging.
    /// - Throws: ``MemPoolError/inconsistent(_:)`` naming the first broken invariant.
    public func validate() throws(MemPoolError) {
        let total = config.totalBlocks
        var inFree = [Bool](repeating: false, count: total)
        var seen = [Bool](repeating: false, count: total)
        for t in 0..<2 {
            let s = tiers[t]
            for k in 0..<Int(s.freeCount) {
                let i = Int(s.freeStack[k])
                guard tierIndex(Int32(i)) == t, !inFree[i] else { throw .inconsistent("free list \(t) entry \(i)") }
                inFree[i] = true
                guard meta[i].refs == 0, meta[i].node < 0, !meta[i].inLRU else {
                    throw .inconsistent("free block \(handle(Int32(i))) is referenced, indexed or in an LRU list")
                }
            }
            var lruLen: Int32 = 0, guestLen: Int32 = 0, lastGuest: Int32 = -1
            var x = s.lruHead, prev: Int32 = -1
            while x >= 0 {
                guard tierIndex(x) == t, meta[Int(x)].inLRU, meta[Int(x)].lruPrev == prev,
                      meta[Int(x)].refs == 0, meta[Int(x)].node >= 0, !isPinned(x) else {
                    throw .inconsistent("LRU list \(t) at \(handle(x))")
                }
                if meta[Int(x)].guest {
                    guard lastGuest == prev else { throw .inconsistent("guest \(handle(x)) after own blocks in LRU list \(t)") }
                    lastGuest = x
                    guestLen += 1
                }
                lruLen += 1
                guard lruLen <= s.capacity else { throw .inconsistent("LRU list \(t) loops") }
                prev = x
                x = meta[Int(x)].lruNext
            }
            guard prev == s.lruTail, lruLen == s.lruCount else { throw .inconsistent("LRU list \(t) ends or count") }
            guard lastGuest == s.guestTail, guestLen == s.guestEvictable else {
                throw .inconsistent("guest segment of LRU list \(t)")
            }
            var used: Int32 = 0, cached: Int32 = 0, guests: Int32 = 0
            for i in Int(s.base)..<Int(s.base + s.capacity) {
                let m = meta[i]
                guard m.refs >= 0 else { throw .inconsistent("negative refcount at \(handle(Int32(i)))") }
                if m.guest {
                    guard !inFree[i] else { throw .inconsistent("free block \(handle(Int32(i))) marked guest") }
                    guests += 1
                }
                if m.refs > 0 { used += 1 } else if m.node >= 0 { cached += 1 } else if !inFree[i] {
                    throw .inconsistent("block \(handle(Int32(i))) is lost: unreferenced, unindexed, not free")
                }
                let evictable = m.refs == 0 && m.node >= 0 && !isPinned(Int32(i))
                guard m.inLRU == evictable else { throw .inconsistent("LRU membership of \(handle(Int32(i)))") }
            }
            guard guests == s.guests else { throw .inconsistent("tier \(t) guest count \(guests)/\(s.guests)") }
            guard used == s.used, cached == s.cached, used + cached + s.freeCount == s.capacity else {
                throw .inconsistent("tier \(t) counts: used \(used)/\(s.used) cached \(cached)/\(s.cached)")
            }
        }
        // Tree: every reachable block once, links symmetric, keys and hashes consistent.
        var stack: [(node: Int32, parentHash: UInt64)] = [(0, PrefixHash.root.value)]
        var nodeCount = 0, indexed = 0
        while let (n, parentHash) = stack.popLast() {
            var h = parentHash
            if n != 0 {
                nodeCount += 1
                let node = nodes[Int(n)]
                guard node.count > 0, children[node.key] == n, node.key == meta[Int(node.first)].hash else {
                    throw .inconsistent("node \(n) key or size")
                }
                var x = node.first, prev: Int32 = -1, count: Int32 = 0
                while x >= 0 {
                    guard !seen[Int(x)], meta[Int(x)].node == n, meta[Int(x)].chainPrev == prev else {
                        throw .inconsistent("node \(n) chain at \(handle(x))")
                    }
                    seen[Int(x)] = true
                    h = PrefixHash.mix(h, tokens(x), blockTokens)
                    guard meta[Int(x)].hash == h else { throw .inconsistent("hash chain at \(handle(x))") }
                    count += 1
                    prev = x
                    x = meta[Int(x)].chainNext
                }
                guard prev == node.last, count == node.count else { throw .inconsistent("node \(n) end or count") }
                let parentNode = nodes[Int(node.parent)]
                let expectDepth = node.parent == 0 ? 0 : parentNode.depth + parentNode.count
                guard node.depth == expectDepth else { throw .inconsistent("node \(n) depth") }
                guard node.pins <= (node.parent == 0 ? Int32.max : parentNode.pins) else {
                    throw .inconsistent("node \(n) pinned more than its parent")
                }
                indexed += Int(count)
            }
            var c = nodes[Int(n)].firstChild, prevSibling: Int32 = -1, childTally: Int32 = 0
            while c >= 0 {
                guard nodes[Int(c)].parent == n, nodes[Int(c)].prevSibling == prevSibling else {
                    throw .inconsistent("child links of node \(n)")
                }
                childTally += 1
                stack.append((c, h))
                prevSibling = c
                c = nodes[Int(c)].nextSibling
            }
            guard childTally == nodes[Int(n)].childCount else { throw .inconsistent("child count of node \(n)") }
        }
        for i in 0..<total where meta[i].node >= 0 && !seen[i] {
            throw .inconsistent("block \(handle(Int32(i))) claims a node but is not in the tree")
        }
        guard indexed == totals.indexed, nodeCount == children.count,
              nodeCount == total - Int(nodeFreeCount) else {
            throw .inconsistent("tree counts: \(indexed) blocks / \(totals.indexed), \(nodeCount) nodes")
        }
    }
}
