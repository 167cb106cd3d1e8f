import Engine
import ServiceLifecycle
import Foundation
import Logging
import MemPool
import Synchronization

/// Caching with disaggregation, in the paper's stages.
public enum PDMode: String, Sendable, CaseIterable, Codable {
    /// Prefill transfers KV to decode; nothing is cached.
    case basic
    /// The prefill instance caches prompts in its own prompt tree.
    case caching1 = "caching-1"
    /// Also the decode instance caches (transfer_with_insert); later turns send only the delta.
    case caching2 = "caching-2"
    /// Also, when a request finishes, decode sends the generated tokens' KV back to prefill, so
    /// the next turn finds the whole history in the prefill instance's cache.
    case caching3 = "caching-3"

    var prefillCaches: Bool { self != .basic }
    var decodeCaches: Bool { self == .caching2 || self == .caching3 }
}

/// Counts of what moved between the instances.
public struct TransferStats: Sendable, Codable, Equatable {
    /// Sequences handed from prefill to decode.
    public var handoffs = 0
    /// Blocks copied prefill → decode, and blocks not sent because decode had them cached.
    public var blocksSent = 0
    public var blocksSkipped = 0
    /// Handoffs that waited for decode blocks (back-pressure), counted once each.
    public var deferredHandoffs = 0
    /// Blocks copied decode → prefill at the end of requests (PD-Caching-3).
    public var blocksReturned = 0
}

/// One prefill and one decode instance in this process, each an engine thread with its own
/// MemPool, joined by in-process KV transfer (the embedded default of `memserve serve`).
public final class PDCluster: InferenceBackend {
    public let prefill: EngineService
    public let decode: EngineService
    public let mode: PDMode
    private let counters = Counters()
    private let logger = Logger(label: "memserve.pd")

    /// - Parameters:
    ///   - prefillModel / decodeModel: the instances' models (`LoadedModel.sibling` shares weights).
    public init(prefillModel: LoadedModel, prefillPool: MemPool, decodeModel: LoadedModel, decodePool: MemPool,
                mode: PDMode, configuration: SchedulerConfiguration = SchedulerConfiguration()) {
        self.mode = mode
        var p = configuration
        p.role = .prefill
        p.prefixCaching = mode.prefillCaches
        var d = configuration
        d.role = .decode
        d.prefixCaching = mode.decodeCaches
        d.retainFinished = mode == .caching3
        prefill = EngineService(model: prefillModel, memPool: prefillPool, configuration: p)
        decode = EngineService(model: decodeModel, memPool: decodePool, configuration: d)
        prefill.handoffHandler = { [unowned self] handoff, sink in self.send(handoff, sink) }
        if mode == .caching3 {
            decode.finishedHandler = { [unowned self] done in self.returnKV(done) }
        }
        let decode = decode, prefill = prefill
        prefill.onCancel = { id in decode.abort(id) }
        decode.onCancel = { id in prefill.abort(id) }
    }

    /// Queues a request on the prefill instance; tokens stream from wherever it is served.
    public func submit(promptTokens: [Int32], sampling: SamplingParameters) throws(EngineError) -> (RequestID, AsyncThrowingStream<RequestOutput, any Error>) {
        try prefill.submit(promptTokens: promptTokens, sampling: sampling)
    }

    public var transferStats: TransferStats { counters.value.withLock { $0 } }

    public var model: LoadedModel { prefill.model }

    public func abort(_ id: RequestID) {
        prefill.abort(id)
        decode.abort(id)
    }

    public var isStopped: Bool { prefill.isStopped && decode.isStopped }

    /// A request's KV must fit in both instances' pools.
    public var tokenCapacity: Int { min(prefill.tokenCapacity, decode.tokenCapacity) }

    /// Both instances' counts added up (blocks of the two pools together).
    public var stats: EngineStats { prefill.stats + decode.stats }

    /// Service: runs both instances until graceful shutdown.
    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.prefill.run() }
            group.addTask { try await self.decode.run() }
            try await group.waitForAll()
        }
    }

    public func shutdown() {
        prefill.shutdown()
        decode.shutdown()
    }

    // MARK: - Prefill → decode

    /// On the prefill thread: a sequence has its first token. The decode thread receives it;
    /// prefill keeps the blocks until decode says the copy is done.
    private func send(_ handoff: Handoff, _ sink: EngineService.RequestSink) {
        let prefill = prefill, mode = mode
        let deferredOnce = Counters()
        decode.enqueue { [counters] decode in
            let dpool = decode.core.memPool, ppool = prefill.core.memPool
            let done: @Sendable () -> Void = { prefill.enqueue { $0.core.releaseHandoff(handoff.id); return true } }
            if sink.isCancelled { done(); return true }
            let source = handoff.blocks.map { BlockID(rawValue: $0) }
            let table: [BlockID], moved: Int
            if mode.decodeCaches {
                guard let r = KVTransfer.transferWithInsert(tokens: handoff.tokens[0..<handoff.computedTokens], source: source,
                                                            from: ppool, to: dpool) else {
                    if deferredOnce.first() { counters.value.withLock { $0.deferredHandoffs += 1 } }
                    return false
                }
                (table, moved) = r
            } else {
                guard let t = KVTransfer.transfer(source[...], from: ppool, to: dpool) else {
                    if deferredOnce.first() { counters.value.withLock { $0.deferredHandoffs += 1 } }
                    return false
                }
                (table, moved) = (t, t.count)
            }
            decode.core.adopt(handoff, blocks: table.map(\.rawValue))
            decode.register(sink, for: handoff.id)
            done()
            counters.value.withLock {
                $0.handoffs += 1
                $0.blocksSent += moved
                $0.blocksSkipped += source.count - moved
            }
            return true
        } dropped: {
            sink.fail(EngineError.shuttingDown)
            prefill.enqueue { $0.core.releaseHandoff(handoff.id); return true }
        }
    }

    // MARK: - Decode → prefill (PD-Caching-3)

    /// On the decode thread: finished sequences, their blocks retained. Prefill pulls the part
    /// of each that it does not cache yet into its prompt tree; decode then drops its hold.
    private func returnKV(_ done: [FinishedSequence]) {
        let decode = decode
        prefill.enqueue { [counters] prefill in
            let ppool = prefill.core.memPool, dpool = decode.core.memPool
            var returned = 0
            for f in done {
                let bt = ppool.blockTokens
                let whole = min(f.tokens.count / bt, f.blocks.count)
                guard whole > 0 else { continue }
                let source = f.blocks[0..<whole].map { BlockID(rawValue: $0) }
                if let r = KVTransfer.transferWithInsert(tokens: f.tokens[0..<whole * bt], source: source, from: dpool, to: ppool) {
                    ppool.release(r.table)
                    returned += r.moved
                }
            }
            counters.value.withLock { $0.blocksReturned += returned }
            decode.enqueue { d in
                for f in done { d.core.memPool.release(f.blocks.map { BlockID(rawValue: $0) }) }
                return true
            }
            return true
        }
    }
}

/// Shared mutable counters for closures that run on the instances' threads.
final class Counters: Sendable {
    let value = Mutex(TransferStats())
    private let flag = Atomic<Bool>(false)
    /// True the first time it is called.
    func first() -> Bool { !flag.exchange(true, ordering: .relaxed) }
}
