import MemPool

/// The scheduler's order to send prefixes an instance evicted to a peer that keeps them for the
/// cluster (the peer tier of the elastic MemPool). Data only; the router carries it out.
public struct SpillOrder: Sendable, Hashable {
    /// The instance that evicted the blocks and still has them staged.
    public var source: InstanceID
    /// The member of the same kind with the most room for peers' blocks.
    public var destination: InstanceID
    /// The evicted prefixes no member caches any more (chained hashes, one per block).
    public var hashes: [PrefixHash]

    public init(source: InstanceID, destination: InstanceID, hashes: [PrefixHash]) {
        self.source = source
        self.destination = destination
        self.hashes = hashes
    }
}

extension GlobalScheduler {
    /// What to do with blocks `source` just evicted (call it after the eviction event was
    /// ingested): the prefixes that no member of its kind caches any more go to the member of
    /// that kind, other than `source` and those in `excluded`, that reported the most room for
    /// peers' blocks. Nil when every evicted prefix is cached elsewhere or no member has room;
    /// the eviction then stands, as without a peer tier. The room taken is counted against the
    /// destination until its next load report.
    public func spillOrder(evicted hashes: [PrefixHash], from source: InstanceID,
                           excluding excluded: Set<InstanceID> = []) -> SpillOrder? {
        guard let s = index(source) else { return nil }
        let kind = members[s].kind
        let tree = tree(kind)
        let lost = hashes.filter { !tree.isCached($0) }
        guard !lost.isEmpty else { return nil }
        guard let d = takeRoom(lost.count, kind: kind, besides: s, excluding: excluded) else { return nil }
        return SpillOrder(source: source, destination: members[d].id, hashes: lost)
    }
}

extension GlobalScheduler {
    /// For `source` leaving gracefully: the prefixes only it caches (less those in `skipping`,
    /// already handed over) and the member of its kind, not in `excluded`, with the most room
    /// for peers' blocks. Nil when nothing is left to hand over or no member has room.
    public func handoverOrder(from source: InstanceID, excluding excluded: Set<InstanceID> = [],
                              skipping: Set<PrefixHash> = []) -> SpillOrder? {
        guard let s = index(source) else { return nil }
        let kind = members[s].kind
        let only = tree(kind).onlyCopies(of: source).filter { !skipping.contains($0) }
        guard !only.isEmpty else { return nil }
        guard let d = takeRoom(only.count, kind: kind, besides: s, excluding: excluded) else { return nil }
        return SpillOrder(source: source, destination: members[d].id, hashes: only)
    }
}

extension GlobalScheduler {
    /// The member of `kind` (other than member index `source` and those in `excluded`) that
    /// reported the most room for peers' blocks, with `blocks` of that room counted as taken
    /// until its next load report; its index in `members`.
    fileprivate func takeRoom(_ blocks: Int, kind: InstanceKind, besides source: Int, excluding excluded: Set<InstanceID>) -> Int? {
        var best: Int?
        for (k, m) in members.enumerated() where k != source && m.kind == kind && !excluded.contains(m.id) && m.load.peerRoom > 0 {
            if best.map({ m.load.peerRoom > members[$0].load.peerRoom }) ?? true { best = k }
        }
        guard let d = best else { return nil }
        members[d].load.peerRoom = max(0, members[d].load.peerRoom - blocks)
        return d
    }
}
