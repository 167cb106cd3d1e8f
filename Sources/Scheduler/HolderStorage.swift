/// Storage behind ``GlobalPromptTree``: an open-addressing table whose slots are the nodes, and
/// pooled holder lists.
///
/// A node is one cached block-prefix, keyed by its chained ``MemPool/PrefixHash``; the hash names
/// the whole path from the root, so the tree needs no parent or child links. A node lists its
/// holders as entries `slot << 1 | cold`, where `slot` is a dense per-tree index of the instance:
/// - one holder (most blocks): the entry sits inline in the node;
/// - a few: a chunk of a power-of-two size from a per-size pool;
/// - many: two bitsets over all slots (members, cold), so that matching a prompt against a prefix
///   every instance holds costs words per block, not holders per block.

/// One table slot: an empty slot has `count == 0`.
struct TreeSlot {
    /// The prefix hash.
    var key: UInt64
    /// The inline entry (one holder), a narrow chunk index, or a wide chunk index.
    var ref: UInt32
    /// Holders, with ``TreeSlot/wideFlag`` set when `ref` names a bitset chunk.
    var count: UInt32

    static let wideFlag: UInt32 = 1 << 31

    @inline(__always) var holders: Int { Int(count & ~Self.wideFlag) }
    @inline(__always) var isWide: Bool { count & Self.wideFlag != 0 }
}

/// A pool of fixed-size chunks of `Element`, growing by doubling, with a free list threaded
/// through the first element of freed chunks.
struct ChunkPool<Element: FixedWidthInteger> {
    private(set) var base: UnsafeMutablePointer<Element>? = nil
    /// Elements per chunk.
    private(set) var stride: Int
    private(set) var capacity = 0
    private var highWater = 0
    private var freeHead = UInt32.max
    /// Chunks handed out and not freed.
    private(set) var live = 0

    init(stride: Int) { self.stride = stride }

    /// Bytes reserved.
    var bytes: Int { capacity * stride * MemoryLayout<Element>.stride }

    @inline(__always)
    func pointer(_ chunk: UInt32) -> UnsafeMutablePointer<Element> { base! + Int(chunk) * stride }

    mutating func allocate() -> UInt32 {
        live += 1
        if freeHead != .max {
            let c = freeHead
            freeHead = UInt32(truncatingIfNeeded: pointer(c)[0])
            return c
        }
        if highWater == capacity { resize(chunks: max(16, capacity * 2), stride: stride) }
        highWater += 1
        return UInt32(highWater - 1)
    }

    mutating func free(_ chunk: UInt32) {
        live -= 1
        pointer(chunk)[0] = Element(truncatingIfNeeded: freeHead)
        freeHead = chunk
    }

    /// Reallocates with room for `chunks` chunks of `stride` elements, keeping each chunk's
    /// first `min(old, new)` elements and zeroing the rest.
    mutating func resize(chunks: Int, stride newStride: Int) {
        let fresh = UnsafeMutablePointer<Element>.allocate(capacity: max(1, chunks * newStride))
        fresh.initialize(repeating: 0, count: max(1, chunks * newStride))
        if let base {
            let keep = min(stride, newStride)
            for c in 0..<highWater { (fresh + c * newStride).update(from: base + c * stride, count: keep) }
            base.deallocate()
        }
        base = fresh
        capacity = chunks
        stride = newStride
    }

    /// Frees the memory.
    mutating func release() {
        base?.deallocate()
        base = nil
        capacity = 0
        highWater = 0
        freeHead = .max
        live = 0
    }
}

/// The node table and the holder pools.
struct HolderStorage {
    private(set) var slots: UnsafeMutablePointer<TreeSlot>
    private(set) var capacity: Int
    private var shift: UInt64
    /// Nodes (distinct prefixes).
    private(set) var nodes = 0
    /// (node, holder) pairs.
    private(set) var holders = 0
    /// Narrow pools by size class: class `k` holds chunks of `1 << k` entries (`k >= 1`).
    private var narrow: [ChunkPool<UInt32>] = []
    /// Bitset chunks: `words` member words, then `words` cold words.
    private(set) var wide = ChunkPool<UInt64>(stride: 2)
    /// 64-bit words per bitset: slots `0..<words * 64` fit.
    private(set) var words = 1

    /// A node turns wide above this many holders, where the bitsets take less room than entries,
    /// and narrow again at `narrowAt`.
    var wideAbove: Int { max(4, 4 * words) }
    var narrowAt: Int { max(2, 2 * words) }

    init(expectedNodes: Int) {
        var cap = 1024
        while cap * 3 / 4 < expectedNodes { cap *= 2 }
        capacity = cap
        shift = UInt64(64 - cap.trailingZeroBitCount)
        slots = .allocate(capacity: cap)
        slots.initialize(repeating: TreeSlot(key: 0, ref: 0, count: 0), count: cap)
    }

    mutating func release() {
        slots.deallocate()
        for k in narrow.indices { narrow[k].release() }
        wide.release()
    }

    /// Bytes reserved by the table and the pools.
    var bytes: Int {
        capacity * MemoryLayout<TreeSlot>.stride + narrow.reduce(0) { $0 + $1.bytes } + wide.bytes
    }

    // MARK: - Table

    @inline(__always)
    func home(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    /// The slot index of `key`, or -1.
    @inline(__always)
    func find(_ key: UInt64) -> Int {
        let mask = capacity - 1
        var i = home(key)
        while true {
            let s = slots[i]
            if s.count == 0 { return -1 }
            if s.key == key { return i }
            i = (i + 1) & mask
        }
    }

    /// Removes the node at slot `i` (its holder memory already freed), shifting later entries of
    /// its cluster back so lookups need no tombstones. Only slot `i` and slots after it in the
    /// cluster (wrapping) change.
    mutating func deleteSlot(_ i: Int) {
        let mask = capacity - 1
        var hole = i, j = i
        while true {
            j = (j + 1) & mask
            let s = slots[j]
            if s.count == 0 { break }
            // The entry may fill the hole when the hole lies between its home and it.
            if (j - home(s.key)) & mask >= (j - hole) & mask {
                slots[hole] = s
                hole = j
            }
        }
        slots[hole].count = 0
        nodes -= 1
    }

    private mutating func rehash(to newCapacity: Int) {
        let old = slots, oldCapacity = capacity
        capacity = newCapacity
        shift = UInt64(64 - newCapacity.trailingZeroBitCount)
        slots = .allocate(capacity: newCapacity)
        slots.initialize(repeating: TreeSlot(key: 0, ref: 0, count: 0), count: newCapacity)
        let mask = newCapacity - 1
        for k in 0..<oldCapacity where old[k].count != 0 {
            var i = home(old[k].key)
            while slots[i].count != 0 { i = (i + 1) & mask }
            slots[i] = old[k]
        }
        old.deallocate()
    }

    /// Shrinks the table after bulk removals, keeping it at most three-quarters full after growth.
    mutating func shrinkIfSparse() {
        var cap = capacity
        while cap > 1024 && nodes < cap / 8 { cap /= 2 }
        if cap != capacity { rehash(to: cap) }
    }

    // MARK: - Holders

    @inline(__always)
    static func sizeClass(_ count: Int) -> Int { 64 - (count - 1).leadingZeroBitCount }

    @inline(__always)
    func narrowEntries(_ s: TreeSlot) -> UnsafeMutablePointer<UInt32> {
        narrow[Self.sizeClass(s.holders)].pointer(s.ref)
    }

    @inline(__always)
    func widePointer(_ s: TreeSlot) -> UnsafeMutablePointer<UInt64> { wide.pointer(s.ref) }

    private mutating func narrowAllocate(count: Int) -> (UInt32, UnsafeMutablePointer<UInt32>) {
        let k = Self.sizeClass(count)
        while narrow.count <= k { narrow.append(ChunkPool(stride: 1 << narrow.count)) }
        let c = narrow[k].allocate()
        return (c, narrow[k].pointer(c))
    }

    private mutating func narrowFree(_ chunk: UInt32, count: Int) { narrow[Self.sizeClass(count)].free(chunk) }

    /// Makes room for slot numbers below `slotCapacity` in the bitsets.
    mutating func ensureSlots(_ slotCapacity: Int) {
        let need = max(1, (slotCapacity + 63) / 64)
        guard need > words else { return }
        // Members and cold words move apart: copy each half into the wider layout.
        let oldWords = words
        var fresh = ChunkPool<UInt64>(stride: 2 * need)
        if wide.live > 0 || wide.capacity > 0 {
            fresh.resize(chunks: wide.capacity, stride: 2 * need)
            for i in 0..<capacity where slots[i].count != 0 && slots[i].isWide {
                let src = wide.pointer(slots[i].ref), dst = fresh.pointer(slots[i].ref)
                dst.update(from: src, count: oldWords)
                (dst + need).update(from: src + oldWords, count: oldWords)
            }
        }
        // Chunk indices are kept, so the free list is rebuilt from what is not referenced.
        var used = [Bool](repeating: false, count: wide.capacity)
        for i in 0..<capacity where slots[i].count != 0 && slots[i].isWide { used[Int(slots[i].ref)] = true }
        fresh.adopt(liveChunks: used)
        wide.release()
        wide = fresh
        words = need
    }

    /// Adds holder `entry` (`slot << 1 | cold`) to the node of `key`, creating the node.
    /// Returns the previous entry of that slot (the same slot, old tier) if it already held it.
    @inline(__always)
    mutating func add(_ key: UInt64, _ entry: UInt32) -> UInt32? {
        if nodes + 1 > capacity * 3 / 4 { rehash(to: capacity * 2) }
        let mask = capacity - 1
        var i = home(key)
        while true {
            let s = slots[i]
            if s.count == 0 {
                slots[i] = TreeSlot(key: key, ref: entry, count: 1)
                nodes += 1
                holders += 1
                return nil
            }
            if s.key == key { break }
            i = (i + 1) & mask
        }
        return addHolder(at: i, entry)
    }

    private mutating func addHolder(at i: Int, _ entry: UInt32) -> UInt32? {
        let s = slots[i]
        let slot = Int(entry >> 1), cold = entry & 1
        if s.isWide {
            let p = widePointer(s), w = slot >> 6, bit = UInt64(1) << UInt64(slot & 63)
            let was: UInt32? = p[w] & bit != 0 ? UInt32(slot << 1) | (p[words + w] & bit != 0 ? 1 : 0) : nil
            p[w] |= bit
            if cold != 0 { p[words + w] |= bit } else { p[words + w] &= ~bit }
            if was == nil {
                slots[i].count += 1
                holders += 1
            }
            return was
        }
        let c = s.holders
        if c == 1 {
            if s.ref >> 1 == entry >> 1 {
                slots[i].ref = entry
                return s.ref
            }
            let (chunk, p) = narrowAllocate(count: 2)
            p[0] = s.ref
            p[1] = entry
            slots[i].ref = chunk
            slots[i].count = 2
            holders += 1
            return nil
        }
        let p = narrowEntries(s)
        for k in 0..<c where p[k] >> 1 == entry >> 1 {
            let was = p[k]
            p[k] = entry
            return was
        }
        holders += 1
        if c + 1 > wideAbove {
            let chunk = wide.allocate()
            let b = wide.pointer(chunk)
            b.update(repeating: 0, count: 2 * words)
            for k in 0..<c { setBits(b, p[k]) }
            setBits(b, entry)
            narrowFree(s.ref, count: c)
            slots[i].ref = chunk
            slots[i].count = UInt32(c + 1) | TreeSlot.wideFlag
            return nil
        }
        if Self.sizeClass(c + 1) != Self.sizeClass(c) {
            let (chunk, q) = narrowAllocate(count: c + 1)
            q.update(from: p, count: c)
            narrowFree(s.ref, count: c)
            q[c] = entry
            slots[i].ref = chunk
        } else {
            p[c] = entry
        }
        slots[i].count = UInt32(c + 1)
        return nil
    }

    @inline(__always)
    private func setBits(_ b: UnsafeMutablePointer<UInt64>, _ entry: UInt32) {
        let slot = Int(entry >> 1), bit = UInt64(1) << UInt64(slot & 63)
        b[slot >> 6] |= bit
        if entry & 1 != 0 { b[words + (slot >> 6)] |= bit }
    }

    /// The entry of `slot` at the node of `key`, or nil.
    func entry(_ key: UInt64, slot: Int) -> UInt32? {
        let i = find(key)
        guard i >= 0 else { return nil }
        return entry(at: i, slot: slot)
    }

    func entry(at i: Int, slot: Int) -> UInt32? {
        let s = slots[i]
        if s.isWide {
            let p = widePointer(s), w = slot >> 6, bit = UInt64(1) << UInt64(slot & 63)
            guard w < words, p[w] & bit != 0 else { return nil }
            return UInt32(slot << 1) | (p[words + w] & bit != 0 ? 1 : 0)
        }
        if s.holders == 1 { return Int(s.ref >> 1) == slot ? s.ref : nil }
        let p = narrowEntries(s)
        for k in 0..<s.holders where Int(p[k] >> 1) == slot { return p[k] }
        return nil
    }

    /// Changes the tier of `slot`'s holding of `key`. Returns the previous entry, or nil when
    /// the slot does not hold it.
    mutating func setTier(_ key: UInt64, slot: Int, cold: Bool) -> UInt32? {
        let i = find(key)
        guard i >= 0 else { return nil }
        let s = slots[i], entry = UInt32(slot << 1) | (cold ? 1 : 0)
        if s.isWide {
            let p = widePointer(s), w = slot >> 6, bit = UInt64(1) << UInt64(slot & 63)
            guard w < words, p[w] & bit != 0 else { return nil }
            let was = UInt32(slot << 1) | (p[words + w] & bit != 0 ? 1 : 0)
            if cold { p[words + w] |= bit } else { p[words + w] &= ~bit }
            return was
        }
        if s.holders == 1 {
            guard Int(s.ref >> 1) == slot else { return nil }
            slots[i].ref = entry
            return s.ref
        }
        let p = narrowEntries(s)
        for k in 0..<s.holders where Int(p[k] >> 1) == slot {
            let was = p[k]
            p[k] = entry
            return was
        }
        return nil
    }

    /// Removes `slot` from the node of `key`, and the node when it was the last holder.
    /// Returns the removed entry, or nil when the slot did not hold it.
    mutating func remove(_ key: UInt64, slot: Int) -> UInt32? {
        let i = find(key)
        guard i >= 0 else { return nil }
        return remove(at: i, slot: slot)
    }

    /// As ``remove(_:slot:)`` for the node at slot index `i`. When the node goes, entries after
    /// `i` in its cluster may move into `i`.
    mutating func remove(at i: Int, slot: Int) -> UInt32? {
        let s = slots[i]
        if s.isWide {
            let p = widePointer(s), w = slot >> 6, bit = UInt64(1) << UInt64(slot & 63)
            guard w < words, p[w] & bit != 0 else { return nil }
            let was = UInt32(slot << 1) | (p[words + w] & bit != 0 ? 1 : 0)
            p[w] &= ~bit
            p[words + w] &= ~bit
            holders -= 1
            let c = s.holders - 1
            if c <= narrowAt { makeNarrow(at: i, count: c) } else { slots[i].count = UInt32(c) | TreeSlot.wideFlag }
            return was
        }
        let c = s.holders
        if c == 1 {
            guard Int(s.ref >> 1) == slot else { return nil }
            holders -= 1
            deleteSlot(i)
            return s.ref
        }
        let p = narrowEntries(s)
        guard let k = (0..<c).first(where: { Int(p[$0] >> 1) == slot }) else { return nil }
        let was = p[k]
        holders -= 1
        if c == 2 {
            let other = p[1 - k]
            narrowFree(s.ref, count: 2)
            slots[i].ref = other
            slots[i].count = 1
            return was
        }
        p[k] = p[c - 1]
        if Self.sizeClass(c - 1) != Self.sizeClass(c) {
            let (chunk, q) = narrowAllocate(count: c - 1)
            q.update(from: p, count: c - 1)
            narrowFree(s.ref, count: c)
            slots[i].ref = chunk
        }
        slots[i].count = UInt32(c - 1)
        return was
    }

    /// Turns the wide node at `i` (with `count` members left, at least one) into a list.
    private mutating func makeNarrow(at i: Int, count: Int) {
        let s = slots[i], b = widePointer(s)
        var list: [UInt32] = []
        list.reserveCapacity(count)
        for w in 0..<words {
            var m = b[w]
            while m != 0 {
                let t = m.trailingZeroBitCount
                m &= m - 1
                let slot = w * 64 + t
                list.append(UInt32(slot << 1) | (b[words + w] >> UInt64(t) & 1 == 1 ? 1 : 0))
            }
        }
        wide.free(s.ref)
        if list.count == 1 {
            slots[i].ref = list[0]
            slots[i].count = 1
            return
        }
        let (chunk, q) = narrowAllocate(count: list.count)
        for (k, e) in list.enumerated() { q[k] = e }
        slots[i].ref = chunk
        slots[i].count = UInt32(list.count)
    }

    /// Calls `body` with every holder entry of node `s`.
    @inline(__always)
    func forEachEntry(_ s: TreeSlot, _ body: (UInt32) -> Void) {
        if s.isWide {
            let b = widePointer(s)
            for w in 0..<words {
                var m = b[w]
                while m != 0 {
                    let t = m.trailingZeroBitCount
                    m &= m - 1
                    body(UInt32((w * 64 + t) << 1) | UInt32(b[words + w] >> UInt64(t) & 1))
                }
            }
        } else if s.holders == 1 {
            body(s.ref)
        } else {
            let p = narrowEntries(s)
            for k in 0..<s.holders { body(p[k]) }
        }
    }
}

extension ChunkPool {
    /// After a resize that kept chunk indices: marks `liveChunks` as handed out and threads the
    /// others onto the free list.
    mutating func adopt(liveChunks: [Bool]) {
        highWater = liveChunks.count
        live = 0
        freeHead = .max
        for c in Swift.stride(from: liveChunks.count - 1, through: 0, by: -1) {
            if liveChunks[c] {
                live += 1
            } else {
                pointer(UInt32(c))[0] = Element(truncatingIfNeeded: freeHead)
                freeHead = UInt32(c)
            }
        }
    }
}
