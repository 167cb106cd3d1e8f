#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why blocks leave the index without moving to another tier; it picks the event and the counter.
enum DropReason {
    case evicted
    case deleted
}

/// The prompt tree's internal operations: node bookkeeping, splits, replacing a block in place
/// and cutting subtrees. The public operations built on them are in `MemPool+Index.swift`.
extension MemPool {
    /// Whether the stored tokens of a block equal `blockTokens` tokens at `p`.
    @inline(__always)
    func tokensEqual(_ i: Int32, _ p: UnsafePointer<Int32>) -> Bool {
        memcmp(tokens(i), p, blockTokens * MemoryLayout<Int32>.stride) == 0
    }

    /// The child of `node` whose edge starts with the block at `p`, given that block's chained
    /// hash. The hash only finds a candidate; tokens and parent confirm it, so a 64-bit collision
    /// reads as a miss rather than as someone else's KV.
    @inline(__always)
    func lookupChild(_ node: Int32, _ key: UInt64, _ p: UnsafePointer<Int32>) -> Int32? {
        guard let c = children[key], nodes[Int(c)].parent == node,
              tokensEqual(nodes[Int(c)].first, p) else { return nil }
        return c
    }

    /// Takes a node slot for an edge that starts with block `first` and links it under `parent`.
    func newNode(parent: Int32, first: Int32, depth: Int32, key: UInt64) -> Int32 {
        nodeFreeCount -= 1
        let n = nodeFreeStack[Int(nodeFreeCount)]
        var node = TreeNode()
        node.parent = parent
        node.first = first
        node.last = first
        node.count = 1
        node.depth = depth
        node.key = key
        node.lastAccess = clock
        nodes[Int(n)] = node
        attachChild(parent, n)
        children[key] = n
        return n
    }

    func attachChild(_ parent: Int32, _ c: Int32) {
        let head = nodes[Int(parent)].firstChild
        nodes[Int(c)].parent = parent
        nodes[Int(c)].prevSibling = -1
        nodes[Int(c)].nextSibling = head
        if head >= 0 { nodes[Int(head)].prevSibling = c }
        nodes[Int(parent)].firstChild = c
        nodes[Int(parent)].childCount += 1
    }

    func detachChild(_ c: Int32) {
        let parent = nodes[Int(c)].parent
        let p = nodes[Int(c)].prevSibling, n = nodes[Int(c)].nextSibling
        if p >= 0 { nodes[Int(p)].nextSibling = n } else { nodes[Int(parent)].firstChild = n }
        if n >= 0 { nodes[Int(n)].prevSibling = p }
        nodes[Int(parent)].childCount -= 1
        nodes[Int(c)].prevSibling = -1
        nodes[Int(c)].nextSibling = -1
    }

    /// Unlinks a node whose blocks have already left the index and which has no children.
    func removeNode(_ n: Int32) {
        detachChild(n)
        if children[nodes[Int(n)].key] == n { children.removeValue(forKey: nodes[Int(n)].key) }
        nodes[Int(n)] = TreeNode()
        nodeFreeStack[Int(nodeFreeCount)] = n
        nodeFreeCount += 1
    }

    /// Splits node `c` so that its edge ends just before block `b`, which starts a new child
    /// node taking the rest of the edge and all of `c`'s children. Returns the new node, or nil if
    /// its key collides with another node's (a 64-bit hash collision; the caller gives up).
    func split(_ c: Int32, at b: Int32) -> Int32? {
        let key = meta[Int(b)].hash
        guard children[key] == nil else { return nil }
        var moved: Int32 = 0
        var x = b
        while x >= 0 {
            moved += 1
            x = meta[Int(x)].chainNext
        }
        nodeFreeCount -= 1
        let m = nodeFreeStack[Int(nodeFreeCount)]
        var node = TreeNode()
        node.first = b
        node.last = nodes[Int(c)].last
        node.count = moved
        node.depth = nodes[Int(c)].depth + nodes[Int(c)].count - moved
        // Both halves were covered by every pin and visit that covered the whole edge.
        node.pins = nodes[Int(c)].pins
        node.hits = nodes[Int(c)].hits
        node.lastAccess = nodes[Int(c)].lastAccess
        node.key = key
        node.firstChild = nodes[Int(c)].firstChild
        node.childCount = nodes[Int(c)].childCount
        nodes[Int(m)] = node
        var ch = node.firstChild
        while ch >= 0 {
            nodes[Int(ch)].parent = m
            ch = nodes[Int(ch)].nextSibling
        }
        nodes[Int(c)].firstChild = -1
        nodes[Int(c)].childCount = 0
        x = b
        while x >= 0 {
            meta[Int(x)].node = m
            x = meta[Int(x)].chainNext
        }
        let p = meta[Int(b)].chainPrev
        meta[Int(p)].chainNext = -1
        meta[Int(b)].chainPrev = -1
        nodes[Int(c)].last = p
        nodes[Int(c)].count -= moved
        attachChild(c, m)
        children[key] = m
        return m
    }

    /// Puts block `new` (not indexed) in the index where `old` is, with `old`'s tokens and hash,
    /// and takes `old` out: if no one holds it, it returns to its free list. `new`, if no one
    /// holds it either, becomes a cached block. This is how tier moves keep the tree intact.
    func replaceInIndex(old: Int32, new: Int32) {
        let n = meta[Int(old)].node
        let p = meta[Int(old)].chainPrev, nx = meta[Int(old)].chainNext
        meta[Int(new)].node = n
        meta[Int(new)].hash = meta[Int(old)].hash
        meta[Int(new)].chainPrev = p
        meta[Int(new)].chainNext = nx
        tokens(new).update(from: tokens(old), count: blockTokens)
        if p >= 0 { meta[Int(p)].chainNext = new } else { nodes[Int(n)].first = new }
        if nx >= 0 { meta[Int(nx)].chainPrev = new } else { nodes[Int(n)].last = new }
        meta[Int(old)].node = -1
        meta[Int(old)].chainPrev = -1
        meta[Int(old)].chainNext = -1
        if meta[Int(old)].guest && !meta[Int(new)].guest {
            meta[Int(new)].guest = true
            tiers[tierIndex(new)].guests += 1
        }
        if meta[Int(old)].refs == 0 {
            if meta[Int(old)].inLRU { lruRemove(old) }
            tiers[tierIndex(old)].cached -= 1
            pushFree(old)
        }
        if meta[Int(new)].refs == 0 {
            tiers[tierIndex(new)].cached += 1
            if nodes[Int(n)].pins == 0 { lruAppend(new) }
        }
    }

    /// Takes one block out of the index (its node's links are the caller's business).
    func unindex(_ i: Int32, _ reason: DropReason) {
        let tier: BlockTier = i < hotCount32 ? .hot : .cold
        switch reason {
        case .evicted:
            totals.evictions += 1
            if meta[Int(i)].guest { totals.guestEvicted += 1 } else if staging != nil { stage(i) }
            note(.evicted(tier), meta[Int(i)].hash)
        case .deleted:
            totals.deletions += 1
            note(.deleted(tier), meta[Int(i)].hash)
        }
        totals.indexed -= 1
        meta[Int(i)].node = -1
        meta[Int(i)].chainPrev = -1
        meta[Int(i)].chainNext = -1
        if meta[Int(i)].refs == 0 {
            if meta[Int(i)].inLRU { lruRemove(i) }
            tiers[tierIndex(i)].cached -= 1
            pushFree(i)
        }
    }

    /// Drops the blocks of node `n` from `b` to the end of its edge, deepest first; the node goes
    /// too when `b` was its first block. The node must have no children.
    func dropEdge(_ n: Int32, from b: Int32, _ reason: DropReason) {
        let wasFirst = nodes[Int(n)].first == b
        let keep = meta[Int(b)].chainPrev
        var x = nodes[Int(n)].last
        var dropped: Int32 = 0
        while true {
            let p = meta[Int(x)].chainPrev
            unindex(x, reason)
            dropped += 1
            if x == b { break }
            x = p
        }
        if wasFirst {
            removeNode(n)
        } else {
            nodes[Int(n)].last = keep
            nodes[Int(n)].count -= dropped
            meta[Int(keep)].chainNext = -1
        }
    }

    /// The strict descendants of `n` in preorder (parents before children); iterative, because
    /// a long conversation can make the tree deeper than the stack is comfortable with.
    func descendants(of n: Int32) -> [Int32] {
        var out: [Int32] = []
        var stack: [Int32] = []
        var c = nodes[Int(n)].firstChild
        while c >= 0 {
            stack.append(c)
            c = nodes[Int(c)].nextSibling
        }
        while let x = stack.popLast() {
            out.append(x)
            var c = nodes[Int(x)].firstChild
            while c >= 0 {
                stack.append(c)
                c = nodes[Int(c)].nextSibling
            }
        }
        return out
    }

    /// Drops block `b` and everything cached below it, whatever holds it: nothing can be matched
    /// past a missing block. Held blocks merely leave the index (their holders keep valid KV).
    /// Under the locking model the victim of an eviction is a leaf's last block, so this is
    /// normally one block; the general case guards against callers that break the model.
    func truncate(at b: Int32, _ reason: DropReason) {
        let n = meta[Int(b)].node
        if nodes[Int(n)].firstChild >= 0 {
            for d in descendants(of: n).reversed() { dropEdge(d, from: nodes[Int(d)].first, reason) }
        }
        dropEdge(n, from: b, reason)
    }

    /// Follows whole blocks of a prompt down the tree without touching LRU state. Returns the
    /// nodes entered, the blocks matched, the last matched block (-1 if none), and whether the
    /// match ends inside the last node's edge.
    func walk(_ tp: UnsafeBufferPointer<Int32>) -> (path: [Int32], matched: Int, last: Int32, partial: Bool) {
        let bt = blockTokens
        let nb = tp.count / bt
        var path: [Int32] = []
        guard nb > 0, let base = tp.baseAddress else { return (path, 0, -1, false) }
        var node: Int32 = 0, i = 0, last: Int32 = -1
        var h = PrefixHash.root.value
        while i < nb {
            let p = base + i * bt
            guard let child = lookupChild(node, PrefixHash.mix(h, p, bt), p) else { break }
            path.append(child)
            var b = nodes[Int(child)].first
            while true {
                last = b
                h = meta[Int(b)].hash
                i += 1
                let nx = meta[Int(b)].chainNext
                if nx < 0 { break }
                if i == nb || !tokensEqual(nx, base + i * bt) { return (path, i, last, true) }
                b = nx
            }
            node = child
        }
        return (path, i, last, false)
    }
}
