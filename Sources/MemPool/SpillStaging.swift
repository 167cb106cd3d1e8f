/// Own blocks' bytes copied out at the moment they are evicted, so that the global scheduler,
/// which hears of the eviction a moment later, can still order them sent to a peer that has
/// room (the peer tier). A ring of preallocated slots: the oldest unpinned entry is overwritten,
/// so nothing needs to be given back and nothing leaks; a slot is pinned while a spill reads it.
///
/// Thread-confined like its ``MemPool``.
final class SpillStaging {
    /// One staged block: the chained hash of the prefix through it, and that prefix's tokens
    /// from the root (whole blocks), so the block can be indexed by a peer that has none of it.
    struct Entry {
        var hash: UInt64
        var path: [Int32]
        /// The hash of the prefix this block extends.
        var parent: UInt64
    }

    let capacity: Int
    let blockBytes: Int
    /// `[capacity][blockBytes]`, page aligned.
    let base: UnsafeMutableRawPointer
    private(set) var entries: [Entry?]
    private var pins: [Int32]
    private var slotOf: [UInt64: Int] = [:]
    /// Staged blocks by the prefix they extend, to follow a staged chain downwards.
    private var childrenOf: [UInt64: [Int]] = [:]
    private var next = 0

    init?(capacity: Int, blockBytes: Int) {
        guard capacity > 0, let base = try? allocateTierArea(bytes: capacity * blockBytes, tier: .cold) else { return nil }
        self.capacity = capacity
        self.blockBytes = blockBytes
        self.base = base
        entries = Array(repeating: nil, count: capacity)
        pins = Array(repeating: 0, count: capacity)
        slotOf.reserveCapacity(capacity)
    }

    deinit { freeTierArea(base) }

    /// Entries currently staged.
    var count: Int { slotOf.count }

    @inline(__always)
    func address(_ slot: Int) -> UnsafeMutableRawPointer { base + slot * blockBytes }

    /// The slot staging `hash`, if any.
    func slot(of hash: UInt64) -> Int? { slotOf[hash] }

    /// Takes the oldest unpinned slot for `hash`; `fill` writes the block's bytes there and
    /// returns false when it could not (the slot is then left empty). False when every slot is
    /// pinned.
    func stage(hash: UInt64, parent: UInt64, path: [Int32], fill: (UnsafeMutableRawPointer) -> Bool) -> Bool {
        if let old = slotOf[hash], pins[old] == 0 { clear(old) }
        for _ in 0..<capacity {
            let s = next
            next = (next + 1) % capacity
            guard pins[s] == 0 else { continue }
            clear(s)
            guard fill(address(s)) else { return false }
            entries[s] = Entry(hash: hash, path: path, parent: parent)
            slotOf[hash] = s
            childrenOf[parent, default: []].append(s)
            return true
        }
        return false
    }

    func pin(_ slot: Int) { pins[slot] += 1 }

    func unpin(_ slot: Int) { if pins[slot] > 0 { pins[slot] -= 1 } }

    /// Empties a slot (after its block reached a peer, or to reuse it).
    func clear(_ slot: Int) {
        guard let e = entries[slot] else { return }
        if slotOf[e.hash] == slot { slotOf[e.hash] = nil }
        childrenOf[e.parent]?.removeAll { $0 == slot }
        if childrenOf[e.parent]?.isEmpty == true { childrenOf[e.parent] = nil }
        entries[slot] = nil
    }

    /// `path` (whose last block's prefix hash is `hash`) extended by staged blocks below it, as
    /// deep as they go (the first child where a staged prefix branches).
    func longestStagedPath(from hash: UInt64, path: [Int32]) -> [Int32] {
        var path = path, hash = hash
        for _ in 0..<capacity {
            guard let s = childrenOf[hash]?.first, let child = entries[s], child.path.count > path.count else { break }
            path = child.path
            hash = child.hash
        }
        return path
    }
}
