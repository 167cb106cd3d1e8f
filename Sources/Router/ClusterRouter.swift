import Dispatch
import Foundation
import Logging
import MemPool
import Metrics
import Scheduler
import Serving
import ServiceLifecycle
import Synchronization

/// The global scheduler at work: an `InferenceBackend` over instances (in other processes or
/// this one) that routes each request to the instance holding most of its prompt, weighed
/// against load, from exact global prompt trees that the instances' `WatchCache` streams keep
/// current. Members join and leave at run time (`add`, `remove`, or a membership feed).
///
/// A request that fails before its first token (its instance died) is routed again to another
/// instance; one that already streamed ends with the instance's error.
public final class ClusterRouter: InferenceBackend, Sendable {
    public struct Configuration: Sendable {
        public var policy: PolicyName = .promptTree
        /// Tree entries of an instance that stopped answering are dropped after this long.
        public var ttl: Duration = .seconds(10)
        /// Attempts per request when instances fail before the first token.
        public var attempts = 3
        /// Longest wait for a scheduler-ordered transfer before the request goes ahead anyway.
        public var transferTimeout: Duration = .seconds(5)
        /// Longest wait for a joining instance's first cache snapshot; as long as the Info
        /// call's deadline, so an instance starting on a loaded machine is not refused.
        public var joinTimeout: Duration = .seconds(30)
        /// The prompt-tree policy's load-balance thresholds and weights.
        public var promptTree = PromptTreePolicy.Configuration()
        /// Order evicted prefixes that no other instance caches sent to a peer with room (the
        /// peer tier); instances without one report no room, so nothing is ordered.
        public var peerTier = true
        public init() {}
    }

    /// One member as the router tracks it.
    public struct Member: Sendable {
        public var id: InstanceID
        /// The name the router reaches it by.
        public var name: String
        public var description: InstanceDescription
        /// Its watch stream is up (its tree in the scheduler is current).
        public var connected: Bool
        /// Requests routed here that have not ended.
        public var inFlight: Int
        /// It is leaving gracefully: it gets no new requests while its prefixes are handed over.
        public var draining = false
    }

    public let servedModel: ServedModel
    public let configuration: Configuration
    let scheduler: Mutex<GlobalScheduler>
    let members = Mutex<[String: MemberState]>([:])
    private let tasks = Mutex<[RequestID: Task<Void, Never>]>([:])
    private let nextID = Atomic<UInt64>(1)
    private let state = Mutex(RunState())
    let metrics = RouterMetrics()
    let logger = Logger(label: "memserve.router")

    struct MemberState: Sendable {
        var member: Member
        let instance: any RoutedInstance
        var watch: Task<Void, Never>?
        var expiry: Task<Void, Never>?
        var load: InstanceLoad
        /// Requests sent here that have not produced output yet, and their uncached prompt
        /// tokens: work the instance's report may not show yet (a request in transit, or in
        /// prefill elsewhere on its way to this decode instance).
        var unstarted = 0
        var unstartedTokens = 0
    }

    struct RunState {
        var stopping = false
        var stopped = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Connections to instances reached over gRPC (members found by address, e.g. through etcd).
    public let clients: PeerClients

    public init(model: ServedModel, configuration: Configuration = Configuration(), clients: PeerClients = PeerClients()) {
        self.clients = clients
        servedModel = model
        self.configuration = configuration
        scheduler = Mutex(GlobalScheduler(policy: configuration.policy, promptTree: configuration.promptTree))
    }

    // MARK: - Membership

    /// Adds an instance: reads what it is, checks that it fits the others (one KV layout, one
    /// PD mode), and starts following its cache. Fails for an instance that does not answer or
    /// does not fit; adding a member again replaces it.
    @discardableResult
    public func add(_ instance: any RoutedInstance) async throws -> InstanceDescription {
        let d = try await instance.describe()
        try checkFits(d)
        if d.model != servedModel.name { logger.warning("instance \(d.name) serves '\(d.model)', the router tokenizes for '\(servedModel.name)'") }
        remove(name: instance.name)
        let id = scheduler.withLock { $0.join(kind: d.role.kind, profile: InstanceProfile(d)) }
        let load = InstanceLoad(d.stats)
        scheduler.withLock { $0.updateLoad(id, load, now: Self.now()) }
        members.withLock {
            $0[instance.name] = MemberState(member: Member(id: id, name: instance.name, description: d, connected: false, inFlight: 0),
                                            instance: instance, watch: nil, expiry: nil, load: load)
        }
        // Joined once its tree is in: routing never sees it half-known.
        let ready = Promise<Void>()
        let watch = Task { await self.follow(instance.name, instance, id, ready: ready) }
        members.withLock { $0[instance.name]?.watch = watch }
        let joinTimeout = configuration.joinTimeout
        let timeout = Task {
            try await Task.sleep(for: joinTimeout)
            ready.fail(RemoteError.peerFailed(peer: instance.name, reason: "no cache snapshot within \(joinTimeout)"))
        }
        defer { timeout.cancel() }
        do {
            try await ready.value()
        } catch {
            remove(name: instance.name)
            throw error
        }
        logger.info("instance \(d.name) joined: \(d.role.rawValue), \(d.mode.rawValue), KV \(d.tokenCapacity) tokens")
        return d
    }

    /// Removes an instance (it left, or membership says it is gone): its tree entries leave the
    /// scheduler at once; its requests in flight end with their streams.
    public func remove(name: String) {
        guard let m = members.withLock({ $0.removeValue(forKey: name) }) else { return }
        m.watch?.cancel()
        m.expiry?.cancel()
        scheduler.withLock { $0.leave(m.member.id) }
        logger.info("instance \(name) left")
    }

    /// The members, for logs and the debug endpoint.
    public var memberList: [Member] { members.withLock { $0.values.map(\.member) }.sorted { $0.id < $1.id } }

    private func checkFits(_ d: InstanceDescription) throws {
        let others = members.withLock { $0.values.map(\.member.description) }.filter { $0.name != d.name }
        if let o = others.first, (o.blockTokens, o.blockBytes) != (d.blockTokens, d.blockBytes) {
            throw RemoteError.incompatiblePeer(peer: d.name, reason: "its KV blocks (\(d.blockTokens) tokens, \(d.blockBytes) bytes) differ from the other instances' (\(o.blockTokens), \(o.blockBytes))")
        }
        if d.role != .colocated, let o = others.first(where: { $0.role != .colocated }), o.mode != d.mode {
            throw RemoteError.incompatiblePeer(peer: d.name, reason: "it runs \(d.mode.rawValue), the others \(o.mode.rawValue)")
        }
    }

    /// Follows one member's cache until it is removed: a snapshot, then events (a gap means
    /// lost events: resubscribe for a fresh snapshot), and its load. When the stream breaks the
    /// member stops receiving requests; its entries expire after the TTL unless it comes back.
    private func follow(_ name: String, _ instance: any RoutedInstance, _ id: InstanceID, ready: Promise<Void>) async {
        var backoff = Duration.milliseconds(50)
        while !Task.isCancelled {
            do {
                updates: for try await update in instance.watchCache() {
                    let now = Self.now()
                    switch update {
                    case let .snapshot(seq, entries):
                        scheduler.withLock { $0.resync(id, entries: entries.map(CacheEntry.init), seq: seq, now: now) }
                        setConnected(name, true)
                        ready.succeed(())
                        backoff = .milliseconds(50)
                    case let .event(seq, event):
                        let spills = configuration.peerTier
                        let leaving = spills ? drainingMembers() : []
                        let (verdict, order) = scheduler.withLock { s -> (FeedVerdict, SpillOrder?) in
                            let v = s.ingest(event, seq: seq, from: id, now: now)
                            guard spills, v == .apply, case let .evicted(hashes, _) = event else { return (v, nil) }
                            return (v, s.spillOrder(evicted: hashes, from: id, excluding: leaving))
                        }
                        if verdict == .gap {
                            metrics.resyncs.increment()
                            break updates
                        }
                        if let order { spill(order, by: instance) }
                    case let .load(stats):
                        let startsDraining = members.withLock { all -> Bool in
                            guard stats.draining, all[name]?.member.draining == false else { return false }
                            all[name]?.member.draining = true
                            return true
                        }
                        if startsDraining { Task { await self.handOver(name, instance, id) } }
                        let held = members.withLock { all -> (hot: Int, cold: Int) in
                            all[name]?.load = InstanceLoad(stats)
                            all[name]?.member.description.stats = stats
                            return all.values.reduce((0, 0)) { ($0.0 + $1.member.description.stats.hot.guest,
                                                                 $0.1 + $1.member.description.stats.cold.guest) }
                        }
                        metrics.peerTierHot.record(held.hot)
                        metrics.peerTierCold.record(held.cold)
                        pushLoad(name)
                    }
                }
            } catch {
                if !Task.isCancelled { logger.warning("instance \(name): cache stream ended: \(error)") }
                ready.fail(error)
            }
            if Task.isCancelled { return }
            setConnected(name, false)
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(2))
        }
    }

    private func setConnected(_ name: String, _ connected: Bool) {
        let ttl = configuration.ttl
        members.withLock { all in
            guard var m = all[name], m.member.connected != connected else { return }
            m.member.connected = connected
            m.expiry?.cancel()
            m.expiry = nil
            if !connected {
                let id = m.member.id
                // Not a poll: one timer per disconnection, cancelled if the member comes back.
                m.expiry = Task { [weak self] in
                    guard (try? await Task.sleep(for: ttl)) != nil, let self else { return }
                    self.scheduler.withLock { s in if let kind = s.kind(of: id) { s.tree(kind).remove(id) } }
                    self.logger.warning("instance \(name): no cache updates for \(ttl); its entries expired")
                }
            }
            all[name] = m
        }
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Members leaving gracefully.
    func drainingMembers() -> Set<InstanceID> {
        members.withLock { Set($0.values.filter(\.member.draining).map(\.member.id)) }
    }

    /// A member is leaving gracefully: orders what only it caches sent to the peers with the
    /// most room, round by round until nothing is left or no peer has room, then tells it it
    /// may go. It receives no requests meanwhile.
    private func handOver(_ name: String, _ instance: any RoutedInstance, _ id: InstanceID) async {
        logger.info("instance \(name) is draining: handing over the prefixes only it caches")
        var handed = Set<PrefixHash>(), full = Set<InstanceID>()
        var total = SpillResult()
        for _ in 0..<16 {
            let excluded = drainingMembers().union(full)
            guard let order = scheduler.withLock({ $0.handoverOrder(from: id, excluding: excluded, skipping: handed) }),
                  let destination = members.withLock({ all in
                      all.values.first { $0.member.id == order.destination && $0.member.connected }?.member.name
                  }) else { break }
            do {
                let r = try await instance.spill(hashes: order.hashes, to: destination, traceID: SpillResult.drainTrace)
                if r.prefixes == 0 { full.insert(order.destination) } else { handed.formUnion(order.hashes) }
                total.prefixes += r.prefixes
                total.movedBlocks += r.movedBlocks
                metrics.spilledBlocks.increment(by: r.movedBlocks)
            } catch {
                logger.warning("handing over \(name)'s prefixes to \(destination) failed: \(error)")
                full.insert(order.destination)
            }
        }
        logger.info("instance \(name) handed over \(total.prefixes) prefixes (\(total.movedBlocks) blocks moved)")
        do {
            try await instance.drained()
        } catch {
            logger.warning("instance \(name): \(error)")
        }
    }

    /// Carries out a spill order off the watch loop: the eviction already happened, the spill
    /// only saves a later recompute, so nothing waits for it.
    private func spill(_ order: SpillOrder, by source: any RoutedInstance) {
        guard let destination = members.withLock({ all in
            all.values.first { $0.member.id == order.destination && $0.member.connected }?.member.name
        }) else { return }
        let metrics = metrics, logger = logger
        Task {
            do {
                let r = try await source.spill(hashes: order.hashes, to: destination, traceID: "")
                metrics.spillOrders.increment()
                metrics.spilledBlocks.increment(by: r.movedBlocks)
            } catch {
                metrics.spillFailures.increment()
                logger.debug("spill from \(source.name) to \(destination) failed: \(error)")
            }
        }
    }

    /// Gives the scheduler a member's reported load, with the requests this router sent it
    /// that have not started there counted as waiting (its report may predate them). Between
    /// reports the scheduler counts what it routed itself.
    func pushLoad(_ name: String) {
        guard let (id, load) = members.withLock({ all -> (InstanceID, InstanceLoad)? in
            guard let m = all[name] else { return nil }
            var l = m.load
            l.waiting = max(l.waiting, m.unstarted)
            l.queuedPrefillTokens = max(l.queuedPrefillTokens, m.unstartedTokens)
            return (m.member.id, l)
        }) else { return }
        scheduler.withLock { $0.updateLoad(id, load, now: Self.now()) }
    }

    // MARK: - Serving

    /// Most tokens one request may hold: the smallest capacity among the entry instances.
    public var tokenCapacity: Int {
        members.withLock { all in
            all.values.filter { $0.member.description.role != .decode }.map(\.member.description.tokenCapacity).min() ?? 0
        }
    }

    public var stats: EngineStats {
        members.withLock { $0.values.map(\.member.description.stats).reduce(EngineStats(), +) }
    }

    public func submit(_ request: ServingRequest) throws(EngineError) -> (RequestID, AsyncThrowingStream<RequestOutput, any Error>) {
        if request.promptTokens.isEmpty { throw .emptyPrompt }
        if let why = request.sampling.validationError() { throw .invalidSampling(why) }
        let capacity = tokenCapacity
        let limit = capacity > 0 ? min(servedModel.maxContext, capacity) : servedModel.maxContext
        if request.promptTokens.count + 1 > limit { throw .promptTooLong(tokens: request.promptTokens.count, limit: limit) }
        if state.withLock({ $0.stopping }) { throw .shuttingDown }
        let id = nextID.add(1, ordering: .relaxed).oldValue
        let (stream, continuation) = AsyncThrowingStream<RequestOutput, any Error>.makeStream()
        // Created under the lock: a request that ends at once (no instance can take it) must
        // not unregister before it is registered, or shutdown would wait for it forever.
        let task = tasks.withLock { t in
            let task = Task {
                defer { self.finished(id) }
                await self.serve(request, id: id, into: continuation)
            }
            t[id] = task
            return task
        }
        continuation.onTermination = { reason in
            if case .cancelled = reason { task.cancel() }
        }
        return (id, stream)
    }

    public func abort(_ id: RequestID) {
        tasks.withLock { $0[id] }?.cancel()
    }

    public var isStopped: Bool { state.withLock { $0.stopped } }

    public func shutdown() {
        // Nothing is routed from now on: stop following the members' caches.
        for m in members.withLock({ Array($0.values) }) {
            m.watch?.cancel()
            m.expiry?.cancel()
        }
        let done = state.withLock { s -> Bool in
            s.stopping = true
            return tasks.withLock { $0.isEmpty }
        }
        if done { markStopped() }
    }

    /// Service: runs until graceful shutdown, then waits for the requests in flight.
    public func run() async throws {
        await withGracefulShutdownHandler {
            await withCheckedContinuation { c in
                let now = state.withLock { s -> Bool in
                    if s.stopped { return true }
                    s.waiters.append(c)
                    return false
                }
                if now { c.resume() }
            }
        } onGracefulShutdown: {
            self.shutdown()
        }
        for m in members.withLock({ Array($0.values) }) {
            m.watch?.cancel()
            m.expiry?.cancel()
        }
    }

    private func finished(_ id: RequestID) {
        let last = tasks.withLock { t -> Bool in
            t.removeValue(forKey: id)
            return t.isEmpty
        }
        if last && state.withLock({ $0.stopping }) { markStopped() }
    }

    private func markStopped() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.stopped = true
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }
}

extension InstanceRole {
    /// The scheduler's name for the kind of instance.
    var kind: InstanceKind {
        switch self {
        case .colocated: .colocated
        case .prefill: .prefill
        case .decode: .decode
        }
    }
}

extension InstanceLoad {
    init(_ s: EngineStats) {
        self.init(running: s.running, waiting: s.waiting, queuedPrefillTokens: s.queuedPrefillTokens,
                  // Blocks kept for peers go first and cost this instance nothing to give up.
                  freeBlocks: s.hot.free + s.hot.evictable, unusedBlocks: s.hot.free + min(s.hot.guest, s.hot.evictable),
                  totalBlocks: s.hot.capacity, peerRoom: s.peerRoom)
    }
}

extension CacheEntry {
    init(_ e: CachedBlockEntry) { self.init(parent: e.parent, hash: e.hash, tier: e.tier) }
}

/// The router's metrics (swift-metrics).
struct RouterMetrics: Sendable {
    let resyncs = Counter(label: "memserve_router_resyncs_total")
    let retries = Counter(label: "memserve_router_retries_total")
    let spillOrders = Counter(label: "memserve_router_spill_orders_total")
    let spilledBlocks = Counter(label: "memserve_router_spilled_blocks_total")
    let spillFailures = Counter(label: "memserve_router_spill_failures_total")
    /// Blocks the members keep for one another: each instance's prefixes held elsewhere.
    let peerTierHot = Gauge(label: "memserve_router_peer_tier_blocks", dimensions: [("tier", "hot")])
    let peerTierCold = Gauge(label: "memserve_router_peer_tier_blocks", dimensions: [("tier", "cold")])
    let transfers = Counter(label: "memserve_router_transfer_decisions_total", dimensions: [("decision", "transfer")])
    let recomputes = Counter(label: "memserve_router_transfer_decisions_total", dimensions: [("decision", "recompute")])
    let transferPredicted = Metrics.Timer(label: "memserve_router_transfer_seconds", dimensions: [("kind", "predicted")])
    let transferActual = Metrics.Timer(label: "memserve_router_transfer_seconds", dimensions: [("kind", "actual")])
    let recomputePredicted = Metrics.Timer(label: "memserve_router_recompute_seconds", dimensions: [("kind", "predicted")])

    func decided(policy: String, matchedTokens: Int) -> Void {
        Counter(label: "memserve_router_decisions_total", dimensions: [("policy", policy)]).increment()
        Counter(label: "memserve_router_matched_tokens_total").increment(by: matchedTokens)
    }
}

extension InstanceProfile {
    /// The cost model's view of an instance from what it measured. Until it has measured, its
    /// prefill is assumed at a millisecond a token and no transfer is ever ordered to or from it.
    init(_ d: InstanceDescription) {
        if d.costs.isMeasured {
            self.init(blockTokens: d.blockTokens, blockBytes: d.blockBytes,
                      prefillSamples: d.costs.prefill.map { PrefillSample(tokens: $0.tokens, seconds: $0.seconds) },
                      transferBytesPerSecond: d.costs.transferBytesPerSecond, transferLatencySeconds: d.costs.transferLatencySeconds)
        } else {
            self.init(blockTokens: d.blockTokens, blockBytes: d.blockBytes, prefillSecondsPerToken: 1e-3, transferBytesPerSecond: 0)
        }
    }
}
