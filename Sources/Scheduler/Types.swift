import MemPool

/// An instance known to the scheduler: a small integer it assigns at ``GlobalScheduler/join(kind:profile:now:)``.
/// Identifiers are never reused while the scheduler lives, so a stale decision cannot name a
/// newcomer. It encodes as a bare integer.
public struct InstanceID: RawRepresentable, Hashable, Sendable, Comparable, Codable, CustomStringConvertible {
    /// The identifier's value.
    public var rawValue: UInt32

    /// Wraps a value (the scheduler makes these; tests and the wire may too).
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Wraps a value.
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }

    public static func < (a: InstanceID, b: InstanceID) -> Bool { a.rawValue < b.rawValue }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(UInt32.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    public var description: String { "i\(rawValue)" }
}

/// What an instance does; the scheduler keeps one global prompt tree per kind.
public enum InstanceKind: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    case prefill, decode, colocated

    public var description: String { rawValue }
}

/// An instance's load as it reports it (pushed with its events).
public struct InstanceLoad: Sendable, Hashable, Codable {
    /// Sequences generating tokens.
    public var running: Int
    /// Requests admitted but not started.
    public var waiting: Int
    /// Prompt tokens still to prefill (uncached ones) of waiting and partly prefilled requests.
    public var queuedPrefillTokens: Int
    /// Hot blocks that can be had now: free plus evictable.
    public var freeBlocks: Int
    /// Of `freeBlocks`, those holding no cached prefix: taking more than these evicts cache.
    public var unusedBlocks: Int
    /// Hot blocks in all.
    public var totalBlocks: Int
    /// Blocks it would keep for peers now (the peer tier) without evicting its own.
    public var peerRoom: Int

    /// `unusedBlocks` defaults to `freeBlocks` (nothing cached is in the way).
    public init(running: Int = 0, waiting: Int = 0, queuedPrefillTokens: Int = 0, freeBlocks: Int = 0,
                unusedBlocks: Int? = nil, totalBlocks: Int = 0, peerRoom: Int = 0) {
        self.peerRoom = peerRoom
        self.running = running
        self.waiting = waiting
        self.queuedPrefillTokens = queuedPrefillTokens
        self.freeBlocks = freeBlocks
        self.unusedBlocks = min(freeBlocks, unusedBlocks ?? freeBlocks)
        self.totalBlocks = totalBlocks
    }

    /// Requests on the instance: the figure load balancing compares.
    public var requests: Int { running + waiting }

    enum CodingKeys: String, CodingKey {
        case running, waiting
        case queuedPrefillTokens = "queued_prefill_tokens"
        case freeBlocks = "free_blocks"
        case unusedBlocks = "unused_blocks"
        case totalBlocks = "total_blocks"
        case peerRoom = "peer_room"
    }
}

/// One cached block of an instance's prompt tree, as a snapshot carries it on the wire:
/// the prefix through the block, the prefix it extends, and the block's tier.
public struct CacheEntry: Sendable, Hashable, Codable {
    /// The prefix the block extends (``PrefixHash/root`` for a prompt's first block).
    public var parent: PrefixHash
    /// The prefix through this block.
    public var hash: PrefixHash
    /// Where the instance holds the block.
    public var tier: BlockTier

    public init(parent: PrefixHash, hash: PrefixHash, tier: BlockTier) {
        self.parent = parent
        self.hash = hash
        self.tier = tier
    }

    /// The per-block entries of a pool's prompt tree, parents before children: each node's
    /// blocks in edge order, the chained hash recomputed per block from the edge's tokens.
    public static func entries(of snapshot: MemPoolSnapshot) -> [CacheEntry] {
        let bt = snapshot.blockTokens
        var lastHash: [Int: PrefixHash] = [:]
        lastHash.reserveCapacity(snapshot.nodes.count)
        var out: [CacheEntry] = []
        out.reserveCapacity(snapshot.nodes.reduce(0) { $0 + $1.blocks.count })
        for node in snapshot.nodes {
            var h = node.parent.flatMap { lastHash[$0] } ?? .root
            node.tokens.withUnsafeBufferPointer { tp in
                for (k, block) in node.blocks.enumerated() {
                    let next = h.extended(with: UnsafeBufferPointer(rebasing: tp[(k * bt)..<((k + 1) * bt)]))
                    out.append(CacheEntry(parent: h, hash: next, tier: block.tier))
                    h = next
                }
            }
            lastHash[node.id] = h
        }
        return out
    }
}

/// How much of a prompt one instance holds, from ``GlobalPromptTree/match(_:)``.
public struct PrefixHit: Sendable, Hashable {
    /// The holder.
    public var instance: InstanceID
    /// Leading blocks of the prompt the instance caches (prefix closure: all of `0..<blocks`).
    public var blocks: Int
    /// How many of those are in its hot tier.
    public var hotBlocks: Int

    public init(instance: InstanceID, blocks: Int, hotBlocks: Int) {
        self.instance = instance
        self.blocks = blocks
        self.hotBlocks = hotBlocks
    }
}

/// What to do with an event, given its sequence number.
public enum FeedVerdict: String, Sendable, Hashable, Codable {
    /// The next event: apply it.
    case apply
    /// Already applied (or covered by the snapshot): ignore it.
    case duplicate
    /// Events were lost, or no snapshot was taken yet: ignore this one and resynchronize from a
    /// fresh snapshot. Every event until then is a gap too.
    case gap
    /// The sender is not a member of the scheduler: ignore it.
    case unknownInstance = "unknown_instance"
}

/// The sequence-number state of one instance's event feed.
///
/// An instance numbers its events 1, 2, 3, ...; a snapshot carries the number of the last event
/// it includes (0 when none). After ``reset(to:)`` with a snapshot's number the feed expects the
/// next one; anything older is a duplicate, anything newer a gap.
public struct CacheFeed: Sendable, Hashable {
    /// The last event applied, or nil while a snapshot is awaited.
    public private(set) var lastSeq: UInt64?

    /// A feed that awaits its first snapshot.
    public init() {}

    /// A feed positioned after event `seq`.
    public init(seq: UInt64) { lastSeq = seq }

    /// Whether events are being dropped until a snapshot arrives.
    public var needsSnapshot: Bool { lastSeq == nil }

    /// Classifies event `seq` and advances past it when it is the next one.
    public mutating func accept(seq: UInt64) -> FeedVerdict {
        guard let last = lastSeq else { return .gap }
        if seq <= last { return .duplicate }
        if seq == last &+ 1 {
            lastSeq = seq
            return .apply
        }
        lastSeq = nil
        return .gap
    }

    /// Resynchronizes to a snapshot that includes every event through `seq`.
    public mutating func reset(to seq: UInt64) { lastSeq = seq }

    /// Forgets the position: every event is a gap until the next ``reset(to:)``.
    public mutating func invalidate() { lastSeq = nil }
}

/// Failures of the scheduler's own bookkeeping.
public enum SchedulerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// ``GlobalPromptTree/validate()`` found broken bookkeeping.
    case inconsistent(String)

    public var description: String {
        switch self {
        case .inconsistent(let why): "global prompt tree bookkeeping is inconsistent: \(why)"
        }
    }
}
