/// Merge rules keyed by the (left, right) token-id pair, in an open-addressing table: the merge
/// loop probes it for every adjacent pair, and a multiplicative hash beats `Dictionary`'s SipHash.
struct MergeTable: Sendable {
    private static let empty = UInt64.max
    private var keys: [UInt64]
    /// Rank in the upper 32 bits, merged token id in the lower.
    private var values: [UInt64]
    private let shift: UInt64
    private(set) var count = 0

    init(capacity: Int) {
        var bits = 4
        while (1 << bits) < capacity * 2 { bits += 1 }
        keys = [UInt64](repeating: Self.empty, count: 1 << bits)
        values = [UInt64](repeating: 0, count: 1 << bits)
        shift = UInt64(64 - bits)
    }

    @inline(__always)
    private static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    @inline(__always)
    private func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// Adds a rule unless the pair already has one: the earlier (lower-ranked) rule wins, as in HF.
    mutating func insert(left: Int32, right: Int32, rank: Int32, merged: Int32) {
        let key = Self.key(left, right)
        let mask = keys.count - 1
        var i = slot(key)
        while keys[i] != Self.empty {
            if keys[i] == key { return }
            i = (i + 1) & mask
        }
        keys[i] = key
        values[i] = UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: merged))
        count += 1
    }

    /// (rank, merged id) of the rule for this pair, or nil.
    @inline(__always)
    func lookup(_ left: Int32, _ right: Int32) -> (rank: Int32, merged: Int32)? {
        let key = Self.key(left, right)
        let mask = keys.count - 1
        var i = slot(key)
        while true {
            let k = keys[i]
            if k == key {
                let v = values[i]
                return (Int32(truncatingIfNeeded: v >> 32), Int32(truncatingIfNeeded: v))
            }
            if k == Self.empty { return nil }
            i = (i + 1) & mask
        }
    }
}

extension MergeTable {
    private static let noRank = Int32.max
    /// Words up to this many symbols use a linear scan per merge, cheaper than a heap when short.
    private static let linearLimit = 32

    /// Applies merges to `symbols` (initial per-byte token ids), always merging the lowest-ranked
    /// adjacent pair and, among equal ranks, the leftmost; appends the resulting ids to `out`.
    func apply(_ symbols: UnsafeMutableBufferPointer<Int32>, into out: inout [Int32]) {
        if symbols.count <= Self.linearLimit {
            applyLinear(symbols, into: &out)
        } else {
            applyHeap(symbols, into: &out)
        }
    }

    private func applyLinear(_ ids: UnsafeMutableBufferPointer<Int32>, into out: inout [Int32]) {
        var n = ids.count
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: 2 * Self.linearLimit) { scratch in
            // ranks[i] and merged[i] describe the pair (ids[i], ids[i + 1]).
            let ranks = UnsafeMutableBufferPointer(rebasing: scratch[0..<Self.linearLimit])
            let merged = UnsafeMutableBufferPointer(rebasing: scratch[Self.linearLimit...])
            @inline(__always) func updatePair(_ i: Int) {
                if let rule = lookup(ids[i], ids[i + 1]) {
                    ranks[i] = rule.rank; merged[i] = rule.merged
                } else {
                    ranks[i] = Self.noRank
                }
            }
            for i in 0..<max(n - 1, 0) { updatePair(i) }
            while n > 1 {
                var best = 0
                for i in 1..<(n - 1) where ranks[i] < ranks[best] { best = i }
                if ranks[best] == Self.noRank { break }
                ids[best] = merged[best]
                // Close the gap left by the right symbol; pair arrays shift along with it.
                for i in (best + 1)..<(n - 1) { ids[i] = ids[i + 1] }
                for i in (best + 1)..<max(n - 2, best + 1) { ranks[i] = ranks[i + 1]; merged[i] = merged[i + 1] }
                n -= 1
                if best > 0 { updatePair(best - 1) }
                if best < n - 1 { updatePair(best) }
            }
        }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: ids[0..<n]))
    }

    /// A candidate merge; `order` packs (rank, left position) so one comparison picks lowest rank, then leftmost.
    private struct Candidate {
        var order: UInt64
        var left: Int32, right: Int32, merged: Int32
        var position: Int { Int(truncatingIfNeeded: order & 0xFFFF_FFFF) }
    }

    private func applyHeap(_ ids: UnsafeMutableBufferPointer<Int32>, into out: inout [Int32]) {
        let n = ids.count
        // Symbols live in a doubly linked list over their original positions; merged-away ones get id -1.
        var prev = [Int32](unsafeUninitializedCapacity: n) { buf, count in
            for i in 0..<n { buf[i] = Int32(i - 1) }
            count = n
        }
        var next = [Int32](unsafeUninitializedCapacity: n) { buf, count in
            for i in 0..<n { buf[i] = i + 1 < n ? Int32(i + 1) : -1 }
            count = n
        }
        var heap: [Candidate] = []
        heap.reserveCapacity(n)

        func push(_ position: Int) {
            let right = Int(next[position])
            guard right >= 0, let rule = lookup(ids[position], ids[right]) else { return }
            let order = UInt64(UInt32(bitPattern: rule.rank)) << 32 | UInt64(position)
            heap.append(Candidate(order: order, left: ids[position], right: ids[right], merged: rule.merged))
            var child = heap.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                if heap[parent].order <= heap[child].order { break }
                heap.swapAt(parent, child)
                child = parent
            }
        }
        func pop() -> Candidate {
            let top = heap[0]
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                var parent = 0
                while true {
                    let l = 2 * parent + 1, r = l + 1
                    var smallest = parent
                    if l < heap.count && heap[l].order < heap[smallest].order { smallest = l }
                    if r < heap.count && heap[r].order < heap[smallest].order { smallest = r }
                    if smallest == parent { break }
                    heap.swapAt(parent, smallest)
                    parent = smallest
                }
            }
            return top
        }

        for i in 0..<(n - 1) { push(i) }
        while !heap.isEmpty {
            let candidate = pop()
            let position = candidate.position
            let right = Int(next[position])
            // Stale if either side has since merged into something else.
            guard ids[position] == candidate.left, right >= 0, ids[right] == candidate.right else { continue }
            ids[position] = candidate.merged
            ids[right] = -1
            let after = Int(next[right])
            next[position] = Int32(after)
            if after >= 0 { prev[after] = Int32(position) }
            let before = Int(prev[position])
            if before >= 0 { push(before) }
            push(position)
        }
        var i = 0
        while i >= 0 {
            out.append(ids[i])
            i = Int(next[i])
        }
    }
}
