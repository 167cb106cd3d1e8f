/// A change to what a pool caches, for a global scheduler that keeps an exact index of every
/// instance's cache. Events carry only instance-independent data — prefix hashes, tokens, tiers,
/// never block ids — and are published in the order the changes happen.
///
/// A prefix is identified by its ``PrefixHash`` through its last block; applying the events in
/// order to a map `hash → tier` reproduces the set of prefixes the pool can match.
public enum MemPoolEvent: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Blocks entered the index (an insert). `parent` is the hash of the prefix they extend
    /// (``PrefixHash/root`` for a prompt's first block), `hashes[i]` identifies the prefix through
    /// new block `i`, and `tokens` are the new blocks' tokens, `blockTokens` per hash.
    case inserted(parent: PrefixHash, hashes: [PrefixHash], tokens: [Int32], tier: BlockTier)
    /// Cached blocks left the index to make room (eviction, or the cold tier making room).
    case evicted(hashes: [PrefixHash], tier: BlockTier)
    /// Cached blocks moved from the hot tier to the cold tier and are still cached.
    case swappedOut(hashes: [PrefixHash])
    /// Cached blocks moved from the cold tier to the hot tier (a swap-in, or an insert that
    /// offered a hot copy of a cold cached block).
    case swappedIn(hashes: [PrefixHash])
    /// Cached blocks left the index by ``MemPool/delete(tokens:)``.
    case deleted(hashes: [PrefixHash], tier: BlockTier)

    /// The prefixes concerned, one per block.
    public var hashes: [PrefixHash] {
        switch self {
        case .inserted(_, let h, _, _), .evicted(let h, _), .swappedOut(let h), .swappedIn(let h),
             .deleted(let h, _): h
        }
    }

    /// Blocks concerned.
    public var blockCount: Int { hashes.count }

    /// The tier the blocks are in after the event (`nil`: they left the pool).
    public var tierAfter: BlockTier? {
        switch self {
        case .inserted(_, _, _, let t): t
        case .swappedOut: .cold
        case .swappedIn: .hot
        case .evicted, .deleted: nil
        }
    }

    public var description: String {
        switch self {
        case .inserted(let p, let h, _, let t): "inserted \(h.count) \(t) block(s) after \(p)"
        case .evicted(let h, let t): "evicted \(h.count) \(t) block(s)"
        case .swappedOut(let h): "swapped out \(h.count) block(s)"
        case .swappedIn(let h): "swapped in \(h.count) block(s)"
        case .deleted(let h, let t): "deleted \(h.count) \(t) block(s)"
        }
    }
}

/// Identifies a synchronous subscription, for ``MemPool/unsubscribe(_:)``.
public struct MemPoolSubscription: Hashable, Sendable {
    let raw: Int
}

/// Kinds of per-block events that are batched while one call runs.
enum PendingEventKind: Equatable {
    case evicted(BlockTier)
    case deleted(BlockTier)
    case swappedOut
    case swappedIn
}

/// The events API. With no subscriber, publishing is one predictable branch per block and no
/// event is built.
extension MemPool {
    /// Calls `handler` with every event, synchronously, on the pool's thread, inside the call
    /// that caused it. The handler must not call back into the pool.
    @discardableResult
    public func subscribe(_ handler: @escaping (MemPoolEvent) -> Void) -> MemPoolSubscription {
        nextSubscriptionID += 1
        handlers.append((nextSubscriptionID, handler))
        eventsActive = true
        return MemPoolSubscription(raw: nextSubscriptionID)
    }

    /// Ends a subscription made with ``subscribe(_:)``.
    public func unsubscribe(_ subscription: MemPoolSubscription) {
        handlers.removeAll { $0.id == subscription.raw }
        eventsActive = !handlers.isEmpty || !streams.isEmpty
    }

    /// A stream of every event from now on, for a consumer on another task.
    ///
    /// The buffer is bounded: by default it keeps the oldest 8,192 undelivered events and drops
    /// newer ones, so a consumer that falls behind sees a consistent prefix of the history and
    /// can tell it lost the rest from ``MemPoolStats/droppedEvents`` (then resynchronize from a
    /// ``snapshot()``). The stream ends when the pool is deallocated; a consumer that stops
    /// iterating is forgotten at the next event.
    public func events(bufferingPolicy: AsyncStream<MemPoolEvent>.Continuation.BufferingPolicy = .bufferingOldest(8192))
        -> AsyncStream<MemPoolEvent>
    {
        let (stream, continuation) = AsyncStream.makeStream(of: MemPoolEvent.self, bufferingPolicy: bufferingPolicy)
        nextSubscriptionID += 1
        streams.append((nextSubscriptionID, continuation))
        eventsActive = true
        return stream
    }

    /// Records a per-block event; consecutive blocks of one kind become one event.
    @inline(__always)
    func note(_ kind: PendingEventKind, _ hash: UInt64) {
        guard eventsActive else { return }
        if pendingKind != kind {
            flushEvents()
            pendingKind = kind
        }
        pendingHashes.append(PrefixHash(value: hash))
    }

    /// Publishes the batched per-block event, if any. Public operations call it before they
    /// return, so a call's events are out when it returns.
    @inline(__always)
    func flushEvents() {
        if pendingKind != nil { publishPending() }
    }

    private func publishPending() {
        guard let kind = pendingKind else { return }
        let hashes = pendingHashes
        pendingKind = nil
        pendingHashes.removeAll(keepingCapacity: true)
        guard !hashes.isEmpty else { return }
        switch kind {
        case .evicted(let t): publish(.evicted(hashes: hashes, tier: t))
        case .deleted(let t): publish(.deleted(hashes: hashes, tier: t))
        case .swappedOut: publish(.swappedOut(hashes: hashes))
        case .swappedIn: publish(.swappedIn(hashes: hashes))
        }
    }

    /// Publishes the `inserted` events of prompt blocks `from..<to`, one per run of one tier.
    func publishInserted(from: Int, to: Int, base: UnsafePointer<Int32>, blocks: UnsafeBufferPointer<BlockID>,
                         parentHash: UInt64) {
        flushEvents()
        let bt = blockTokens
        var start = from
        var parent = parentHash
        while start < to {
            let tier = blocks[start].tier
            var end = start + 1
            while end < to && blocks[end].tier == tier { end += 1 }
            let hashes = (start..<end).map { PrefixHash(value: meta[Int(index(blocks[$0]))].hash) }
            let tokens = Array(UnsafeBufferPointer(start: base + start * bt, count: (end - start) * bt))
            publish(.inserted(parent: PrefixHash(value: parent), hashes: hashes, tokens: tokens, tier: tier))
            parent = hashes[hashes.count - 1].value
            start = end
        }
    }

    func publish(_ event: MemPoolEvent) {
        for h in handlers { h.handler(event) }
        guard !streams.isEmpty else { return }
        var ended: [Int] = []
        for s in streams {
            switch s.continuation.yield(event) {
            case .dropped: totals.droppedEvents += 1
            case .terminated: ended.append(s.id)
            case .enqueued: break
            @unknown default: break
            }
        }
        if !ended.isEmpty {
            streams.removeAll { ended.contains($0.id) }
            eventsActive = !handlers.isEmpty || !streams.isEmpty
        }
    }
}
