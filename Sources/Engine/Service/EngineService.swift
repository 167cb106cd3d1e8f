import Foundation
import Logging
import MemPool
import Metrics
import ServiceLifecycle
import Synchronization

/// Runs an `EngineCore` on a dedicated thread and serves it to async callers: `submit`
/// returns a stream of outputs; cancelling the stream aborts the request and frees its blocks.
///
/// The core (model, scheduler, MemPool) is touched only by the engine thread; callers talk
/// to it through a mutex-protected inbox, so a slow or vanished client never blocks a step.
/// Create it after `MetricsSystem.bootstrap` so its metrics reach the backend.
public final class EngineService: Service, @unchecked Sendable {
    public let model: LoadedModel
    public let configuration: SchedulerConfiguration
    /// The engine. Touch it only on the engine thread (inside `enqueue`d work).
    public let core: EngineCore
    /// Called on the engine thread with each sequence a prefill instance hands off, and the sink
    /// its outputs go to from now on.
    public var handoffHandler: (@Sendable (Handoff, RequestSink) -> Void)?
    /// Called on the engine thread with finished sequences whose blocks were retained
    /// (`SchedulerConfiguration.retainFinished`); the handler must release them eventually.
    public var finishedHandler: (@Sendable ([FinishedSequence]) -> Void)?
    /// Requests being served here, by id (engine thread only).
    private var live: [RequestID: RequestSink] = [:]
    /// Work that could not run yet (e.g. no free blocks for an arriving handoff), retried after
    /// every step: this is how a busy decode instance pushes back on prefill.
    private var deferred: [EngineTask] = []
    private var stopDeadline: UInt64 = 0
    private let logger = Logger(label: "memserve.engine")
    private let inbox = Mutex(Inbox())
    private let wake = NSCondition()
    /// Resolved when the engine thread has stopped.
    private let stoppedSignal = Promise<Void>()
    private let nextID = Atomic<UInt64>(1)
    private let snapshot = Mutex(EngineStats())
    private let drainingFlag = Atomic<Bool>(false)
    /// Consumers of `statsUpdates()`, by id.
    private let statsWatchers = Mutex<(next: Int, all: [Int: AsyncStream<EngineStats>.Continuation])>((0, [:]))
    private let metrics = EngineMetrics()

    struct Inbox {
        var added: [(GenerationRequest, RequestSink)] = []
        var tasks: [EngineTask] = []
        var aborted: [RequestID] = []
        var stopping = false
        var stopped = false
    }

    /// Where a request's outputs go, wherever it is served; moves with the request from a
    /// prefill instance to a decode instance.
    public final class RequestSink: @unchecked Sendable {
        let continuation: AsyncThrowingStream<RequestOutput, any Error>.Continuation
        let submitted = DispatchTime.now().uptimeNanoseconds
        var firstToken: UInt64?
        private let cancelledFlag = Atomic<Bool>(false)
        init(_ c: AsyncThrowingStream<RequestOutput, any Error>.Continuation) { continuation = c }
        /// The client went away.
        public var isCancelled: Bool { cancelledFlag.load(ordering: .acquiring) }
        func cancel() { cancelledFlag.store(true, ordering: .releasing) }
        /// Ends the request with an error (e.g. its KV could not be moved).
        public func fail(_ error: any Error) { continuation.finish(throwing: error) }
        /// Passes on an output produced elsewhere (a remote decode instance).
        public func yield(_ output: RequestOutput) { continuation.yield(output) }
        /// Ends the stream normally.
        public func finish() { continuation.finish() }
    }

    /// A fresh request id of this instance (for sequences that arrive by handoff from
    /// another process, whose ids may collide with ours).
    public func reserveID() -> RequestID { nextID.add(1, ordering: .relaxed).oldValue }

    /// A sink and its stream for a request arriving by handoff from another process; pass the
    /// sink to `register` on the engine thread. Cancelling the stream aborts the request.
    public func makeSink(for id: RequestID) -> (RequestSink, AsyncThrowingStream<RequestOutput, any Error>) {
        let (stream, continuation) = AsyncThrowingStream<RequestOutput, any Error>.makeStream(bufferingPolicy: .unbounded)
        let sink = RequestSink(continuation)
        continuation.onTermination = { [weak self, weak sink] reason in
            if case .cancelled = reason {
                sink?.cancel()
                self?.abort(id)
            }
        }
        return (sink, stream)
    }

    public init(model: LoadedModel, memPool: MemPool, configuration: SchedulerConfiguration = SchedulerConfiguration()) {
        self.model = model
        core = EngineCore(model: model.transformer, tokenizer: model.tokenizer, memPool: memPool, configuration: configuration)
        self.configuration = core.configuration
        // The thread keeps the service alive until it stops.
        let thread = Thread { self.loop() }
        thread.name = "memserve-engine"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Queues a request. Fails at once (nothing queued) for requests that can never run, and
    /// after shutdown began. The stream yields one output per step that touched the request
    /// and finishes after the output with a finish reason.
    public func submit(_ request: ServingRequest) throws(EngineError) -> (RequestID, AsyncThrowingStream<RequestOutput, any Error>) {
        let id = nextID.add(1, ordering: .relaxed).oldValue
        return (id, try submit(id: id, promptTokens: request.promptTokens, sampling: request.sampling,
                               traceID: request.traceID))
    }

    /// `submit` under an id from `reserveID`, for callers that must know the id before the
    /// engine can act on the request.
    /// `handoffTo` names the decode instance a prefill instance hands the sequence to.
    public func submit(id: RequestID, promptTokens: [Int32], sampling: SamplingParameters,
                       handoffTo: String? = nil, traceID: String = "") throws(EngineError) -> AsyncThrowingStream<RequestOutput, any Error> {
        let request = GenerationRequest(id: id, promptTokens: promptTokens, sampling: sampling, handoffTo: handoffTo,
                                        traceID: traceID)
        try core.validate(request)
        let (stream, continuation) = AsyncThrowingStream<RequestOutput, any Error>.makeStream(bufferingPolicy: .unbounded)
        let submission = RequestSink(continuation)
        let accepted = inbox.withLock { box -> Bool in
            if box.stopping { return false }
            box.added.append((request, submission))
            return true
        }
        if !accepted { throw .shuttingDown }
        continuation.onTermination = { [weak self, weak submission] reason in
            if case .cancelled = reason {
                submission?.cancel()
                self?.abort(id)
                self?.onCancel?(id)
            }
        }
        metrics.requests.increment()
        signal()
        return stream
    }

    /// Called when a client cancels, so a cluster can abort the request wherever it went.
    public var onCancel: (@Sendable (RequestID) -> Void)?

    /// Runs `work` on the engine thread before the next step. Work returning false is retried
    /// after each step until it returns true.
    public func enqueue(_ work: @escaping @Sendable (EngineService) -> Bool, dropped: (@Sendable () -> Void)? = nil) {
        let task = EngineTask(work, dropped: dropped)
        let queued = inbox.withLock { box -> Bool in
            if box.stopped { return false }
            box.tasks.append(task)
            return true
        }
        if queued { signal() } else { dropped?() }
    }

    /// Runs `body` on the engine thread until it returns a value (nil: not yet; retried after
    /// each step, e.g. until blocks are free) and returns it. If the caller is cancelled while
    /// the body waits, the body is not run again and this throws `CancellationError`; a value
    /// already produced is returned even then, so the caller can undo what it holds.
    public func perform<T: Sendable>(_ body: @escaping @Sendable (EngineService) -> T?) async throws -> T {
        let promise = Promise<T>()
        enqueue({ engine in
            if promise.isCancelled {
                promise.fail(CancellationError())
                return true
            }
            guard let value = body(engine) else { return false }
            promise.succeed(value)
            return true
        }, dropped: { promise.fail(EngineError.shuttingDown) })
        return try await promise.value()
    }

    /// Engine thread only: serve `id`'s outputs to `sink` (a request arriving by handoff).
    public func register(_ sink: RequestSink, for id: RequestID) {
        if sink.isCancelled {
            core.abort(id)
            return
        }
        live[id] = sink
    }

    /// Stops a request (client gone); its blocks are freed at the next step.
    public func abort(_ id: RequestID) {
        inbox.withLock { $0.aborted.append(id) }
        signal()
    }

    /// Counts for `/metrics` and `/health`, as of the last step.
    public var stats: EngineStats { snapshot.withLock { $0 } }

    /// Service: serves until graceful shutdown, then stops admitting, lets running requests
    /// finish, and returns when the engine thread has stopped.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            // Woken when the engine thread ends; a cancelled service stops its engine too.
            try await withTaskCancellationHandler {
                try await stoppedSignal.value()
            } onCancel: { [weak self] in
                self?.shutdown()
            }
        } onGracefulShutdown: { [weak self] in
            self?.logger.info("engine: draining")
            self?.shutdown()
        }
    }

    /// Whether the engine thread has stopped.
    public var isStopped: Bool { inbox.withLock { $0.stopped } }

    /// Stops the engine thread without waiting (tests, embedded use).
    public func shutdown() {
        inbox.withLock { $0.stopping = true }
        signal()
    }

    private func signal() {
        wake.lock()
        wake.signal()
        wake.unlock()
    }

    // MARK: - Engine thread

    private func loop() {
        while true {
            let (added, aborted, tasks, stopping) = inbox.withLock { box in
                defer { box.added.removeAll(); box.aborted.removeAll(); box.tasks.removeAll() }
                return (box.added, box.aborted, box.tasks, box.stopping)
            }
            for (request, sink) in added {
                do {
                    try core.add(request)
                    live[request.id] = sink
                } catch {
                    sink.continuation.finish(throwing: error)
                }
            }
            for id in aborted where core.abort(id) || live[id] != nil {
                // The consumer is usually gone already; if not, it sees the stream end.
                live.removeValue(forKey: id)?.continuation.finish()
                metrics.aborted.increment()
            }
            runTasks(tasks)
            if stopping {
                // Whatever is still here after a grace period (work stuck on another instance
                // that stopped first) is ended, so a stopping process never hangs on this thread.
                let now = DispatchTime.now().uptimeNanoseconds
                if stopDeadline == 0 { stopDeadline = now + 1_000_000_000 }
                if now > stopDeadline {
                    let pool = core.memPool.stats
                    logger.warning("engine: forced stop: running \(core.runningCount), waiting \(core.waitingCount), live \(live.count), deferred \(deferred.count), handoffs \(core.pendingHandoffCount), hot used \(pool.hot.used)/\(pool.hot.capacity) cached \(pool.hot.cached)")
                    for task in deferred { task.dropped?() }
                    deferred.removeAll()
                    for (_, sink) in live { sink.fail(EngineError.shuttingDown) }
                    live.removeAll()
                    break
                }
            }
            // A stalled core waits for the next arrival like an idle one, unless one just came.
            let arrived = !added.isEmpty || !aborted.isEmpty || !tasks.isEmpty
            if !core.hasWork || (core.stalled && !arrived && !stopping) {
                if stopping && !core.hasWork && live.isEmpty && deferred.isEmpty && core.pendingHandoffCount == 0 { break }
                publishStats()
                wake.lock()
                // Nothing new since this pass read the inbox (a stop request counts as new).
                if inbox.withLock({ $0.added.isEmpty && $0.aborted.isEmpty && $0.tasks.isEmpty && $0.stopping == stopping }) {
                    // Deferred work (a reservation waiting for room) is retried at the top of
                    // every pass, and every release of this pool's blocks is work for this
                    // thread that signals `wake`, so waiting for the next arrival is enough.
                    // Stopping, the wait also ends at the forced-stop deadline.
                    if !stopping {
                        wake.wait()
                    } else {
                        let now = DispatchTime.now().uptimeNanoseconds
                        let left = stopDeadline > now ? Double(stopDeadline - now) / 1e9 : 0
                        _ = wake.wait(until: Date().addingTimeInterval(left))
                    }
                }
                wake.unlock()
                continue
            }
            var outputs: [RequestOutput] = []
            do {
                outputs = try core.step()
                if let failed = core.failedStep { logger.error("engine step failed: \(failed)") }
            } catch {
                logger.error("engine step failed: \(error)")
            }
            // Before the clients hear that their requests finished: a client's next turn then
            // finds this turn's KV already on its way (PD-Caching-3).
            if let finishedHandler {
                let done = core.takeFinished()
                if !done.isEmpty { finishedHandler(done) }
            }
            deliver(outputs)
            if let handoffHandler {
                for h in core.takeHandoffs() {
                    if let sink = live.removeValue(forKey: h.id) { handoffHandler(h, sink) } else { core.releaseHandoff(h.id) }
                }
            }
            publishStats()
        }
        publishStats()
        let leftover = inbox.withLock { box in
            box.stopped = true
            defer { box.tasks.removeAll() }
            return box.tasks
        }
        for task in leftover { task.dropped?() }
        stoppedSignal.succeed(())
        // Finished outside the lock: finishing runs each stream's termination handler, which
        // takes the lock.
        let watchers = statsWatchers.withLock { w in
            defer { w.all.removeAll() }
            return Array(w.all.values)
        }
        for c in watchers { c.finish() }
    }

    private func runTasks(_ tasks: [EngineTask]) {
        let retry = deferred
        deferred.removeAll()
        for task in retry + tasks where !task.body(self) {
            task.retries += 1
            if task.retries == 20_000 {
                let pool = core.memPool.stats
                // Something holds the blocks this task needs for very long: say what, once.
                logger.warning("engine: a task has waited 20000 rounds: running \(core.runningCount), waiting \(core.waitingCount), live \(live.count), hot used \(pool.hot.used)/\(pool.hot.capacity) cached \(pool.hot.cached) free \(pool.hot.free) \(core.debugDescription)")
            }
            deferred.append(task)
        }
    }

    private func deliver(_ outputs: [RequestOutput]) {
        let now = DispatchTime.now().uptimeNanoseconds
        for out in outputs {
            guard let sub = live[out.id] else { continue }
            if out.token != nil && sub.firstToken == nil {
                sub.firstToken = now
                metrics.ttft.recordNanoseconds(Int64(now - sub.submitted))
                metrics.promptTokens.increment(by: out.promptTokens)
                metrics.cachedTokens.increment(by: out.cachedTokens)
            }
            if out.token != nil { metrics.generatedTokens.increment() }
            sub.continuation.yield(out)
            if out.finishReason != nil {
                if let first = sub.firstToken, out.generatedTokens > 1 {
                    metrics.tpot.recordNanoseconds(Int64((now - first) / UInt64(out.generatedTokens - 1)))
                }
                sub.continuation.finish()
                live[out.id] = nil
            }
        }
    }

    /// Reports the instance as leaving (in its stats): routers send it nothing new and hand its
    /// only-copy prefixes to peers.
    public func markDraining() {
        drainingFlag.store(true, ordering: .relaxed)
        enqueue { _ in true }
    }

    private func publishStats() {
        let pool = core.memPool.stats
        let s = EngineStats(running: core.runningCount, waiting: core.waitingCount, hot: pool.hot, cold: pool.cold,
                            evictions: pool.evictions, demotions: pool.demotions, cachedBlocks: pool.indexedBlocks,
                            pendingHandoffs: core.pendingHandoffCount, queuedPrefillTokens: core.queuedPrefillTokens,
                            peerRoom: core.memPool.guestRoom, stagedBlocks: core.memPool.stagedBlockCount,
                            spilledBlocks: pool.spilledBlocks, draining: drainingFlag.load(ordering: .relaxed))
        let changed = snapshot.withLock { old in
            defer { old = s }
            return old != s
        }
        if changed {
            let watchers = statsWatchers.withLock { Array($0.all.values) }
            for c in watchers { c.yield(s) }
        }
    }

    /// The engine's counts whenever they change (the newest only, if the consumer is slower
    /// than the engine), starting with the current ones: what an instance pushes to routers.
    public func statsUpdates() -> AsyncStream<EngineStats> {
        let (stream, continuation) = AsyncStream.makeStream(of: EngineStats.self, bufferingPolicy: .bufferingNewest(1))
        let id = statsWatchers.withLock { w in
            w.next += 1
            w.all[w.next] = continuation
            return w.next
        }
        continuation.yield(stats)
        continuation.onTermination = { [weak self] _ in
            _ = self?.statsWatchers.withLock { $0.all.removeValue(forKey: id) }
        }
        return stream
    }
}

/// The engine's metrics (swift-metrics; exported by whatever backend was bootstrapped).
struct EngineMetrics {
    let requests = Counter(label: "memserve_requests_total")
    let aborted = Counter(label: "memserve_requests_aborted_total")
    let promptTokens = Counter(label: "memserve_prompt_tokens_total")
    let cachedTokens = Counter(label: "memserve_cached_prompt_tokens_total")
    let generatedTokens = Counter(label: "memserve_generated_tokens_total")
    let ttft = Metrics.Timer(label: "memserve_time_to_first_token_seconds")
    let tpot = Metrics.Timer(label: "memserve_time_per_output_token_seconds")
    // Pool and queue gauges are recorded by the HTTP front end when scraped, from its
    // backend's counts: several engines of one process would overwrite each other's.
}

/// Work for an engine thread. A class, so a task retried many times is the same closure each
/// time (re-storing a closure value can wrap it in another conversion thunk per retry).
final class EngineTask: @unchecked Sendable {
    /// Engine thread only.
    var retries = 0
    let body: @Sendable (EngineService) -> Bool
    /// Called if the engine stops before the task succeeded.
    let dropped: (@Sendable () -> Void)?
    init(_ body: @escaping @Sendable (EngineService) -> Bool, dropped: (@Sendable () -> Void)?) {
        self.body = body
        self.dropped = dropped
    }
}

extension EngineService: InferenceBackend {
    public var servedModel: ServedModel { model.served }
    public var tokenCapacity: Int { core.memPool.hotBlocks * core.memPool.blockTokens }
}
