import MemPool

/// Prompts routed to instances whose prefill has not produced a token yet: their blocks are not
/// in the instance's prompt tree (a pool indexes a prompt as its prefill computes it), but a
/// request routed behind them will find them there. Without this, a burst of requests sharing a
/// new prefix (a group's document, a fresh system prompt) scatters across instances, each
/// prefilling and caching its own copy.
///
/// Counted per prefix and instance, from routing until the request's first output (or its
/// failure), when the instance's own events take over.
struct InFlightPrefixes {
    /// Chain hash of a prompt's leading blocks → the instances computing that prefix, with how
    /// many requests each. Few instances per prefix, so a small array.
    private var holders: [PrefixHash: [(instance: InstanceID, count: Int)]] = [:]

    var isEmpty: Bool { holders.isEmpty }

    /// Distinct (prefix, instance) pairs, for inspection.
    var entries: Int { holders.values.reduce(0) { $0 + $1.count } }

    mutating func add(_ hashes: [PrefixHash], on id: InstanceID) {
        // Mutated in place (no copy of the array per block).
        for h in hashes {
            if let i = holders[h]?.firstIndex(where: { $0.instance == id }) {
                holders[h]![i].count += 1
            } else {
                holders[h, default: []].append((id, 1))
            }
        }
    }

    /// Undoes one ``add(_:on:)`` of the same hashes.
    mutating func remove(_ hashes: [PrefixHash], on id: InstanceID) {
        for h in hashes {
            guard let i = holders[h]?.firstIndex(where: { $0.instance == id }) else { continue }
            holders[h]![i].count -= 1
            if holders[h]![i].count <= 0 {
                holders[h]!.remove(at: i)
                if holders[h]!.isEmpty { holders[h] = nil }
            }
        }
    }

    /// Forgets an instance (it left).
    mutating func removeAll(on id: InstanceID) {
        for (h, list) in holders where list.contains(where: { $0.instance == id }) {
            let rest = list.filter { $0.instance != id }
            holders[h] = rest.isEmpty ? nil : rest
        }
    }

    /// Calls `found(instance, blocks)` with the leading blocks of `hashes` each instance is
    /// computing (the longest, last call per instance wins). A chain hash names its whole
    /// prefix, so the walk stops at the first block nobody computes.
    func match(_ hashes: [PrefixHash], _ found: (InstanceID, Int) -> Void) {
        guard !holders.isEmpty else { return }
        for (k, h) in hashes.enumerated() {
            guard let list = holders[h] else { return }
            for e in list { found(e.instance, k + 1) }
        }
    }
}
