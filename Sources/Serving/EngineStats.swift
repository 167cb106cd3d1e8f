import MemPool

/// A point-in-time view of the engine for health and metrics endpoints.
public struct EngineStats: Sendable, Codable, Hashable {
    public var running = 0
    public var waiting = 0
    public var hot = TierStats(capacity: 0, free: 0, used: 0, cached: 0, evictable: 0)
    public var cold = TierStats(capacity: 0, free: 0, used: 0, cached: 0, evictable: 0)
    public var evictions = 0
    public var demotions = 0
    public var cachedBlocks = 0
    /// Handed-off sequences whose blocks are still held for a transfer in flight.
    public var pendingHandoffs = 0
    /// Prompt tokens queued or admitted whose KV is not computed yet.
    public var queuedPrefillTokens = 0
    /// The peer tier: peers' blocks this instance would take now without evicting its own.
    public var peerRoom = 0
    /// Own evicted blocks staged for a spill order, and staged blocks sent to peers so far.
    public var stagedBlocks = 0
    public var spilledBlocks = 0
    /// Leaving gracefully: send it nothing new, hand its only-copy prefixes to peers.
    public var draining = false

    public init(running: Int = 0, waiting: Int = 0, hot: TierStats = TierStats(capacity: 0, free: 0, used: 0, cached: 0, evictable: 0),
                cold: TierStats = TierStats(capacity: 0, free: 0, used: 0, cached: 0, evictable: 0),
                evictions: Int = 0, demotions: Int = 0, cachedBlocks: Int = 0, pendingHandoffs: Int = 0,
                queuedPrefillTokens: Int = 0, peerRoom: Int = 0, stagedBlocks: Int = 0, spilledBlocks: Int = 0,
                draining: Bool = false) {
        self.draining = draining
        self.peerRoom = peerRoom
        self.stagedBlocks = stagedBlocks
        self.spilledBlocks = spilledBlocks
        self.queuedPrefillTokens = queuedPrefillTokens
        self.pendingHandoffs = pendingHandoffs
        self.running = running
        self.waiting = waiting
        self.hot = hot
        self.cold = cold
        self.evictions = evictions
        self.demotions = demotions
        self.cachedBlocks = cachedBlocks
    }
}

extension EngineStats {
    /// Counts of several instances added up.
    public static func + (a: EngineStats, b: EngineStats) -> EngineStats {
        EngineStats(running: a.running + b.running, waiting: a.waiting + b.waiting, hot: a.hot + b.hot, cold: a.cold + b.cold,
                    evictions: a.evictions + b.evictions, demotions: a.demotions + b.demotions,
                    cachedBlocks: a.cachedBlocks + b.cachedBlocks, pendingHandoffs: a.pendingHandoffs + b.pendingHandoffs,
                    queuedPrefillTokens: a.queuedPrefillTokens + b.queuedPrefillTokens, peerRoom: a.peerRoom + b.peerRoom,
                    stagedBlocks: a.stagedBlocks + b.stagedBlocks, spilledBlocks: a.spilledBlocks + b.spilledBlocks)
    }
}
