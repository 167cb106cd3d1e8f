import Engine
import ServiceLifecycle
import Foundation
import Logging
import MemPool
import Synchronization

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
    /// Blocks this instance sent to another on the scheduler's order (`pushPrefix`).
    public var blocksPushed = 0
    /// Spill orders carried out (the peer tier), prefixes sent, and blocks the peers took.
    public var spills = 0
    public var prefixesSpilled = 0
    public var blocksSpilled = 0
}

/// One prefill and one decode instance in this process (the embedded default of `memserve
/// serve --prefill 1 --decode 1`): two `InstanceNode`s, each an engine thread with its own
/// MemPool, joined by `LocalLink`s, so KV moves by memory copy through the same code that moves
/// it over gRPC between processes.
public final class PDCluster: InferenceBackend {
    public let prefillNode: InstanceNode
    public let decodeNode: InstanceNode
    public let mode: PDMode

    /// - Parameters:
    ///   - prefillModel / decodeModel: the instances' models (`LoadedModel.sibling` shares weights).
    public init(prefillModel: LoadedModel, prefillPool: MemPool, decodeModel: LoadedModel, decodePool: MemPool,
                mode: PDMode, configuration: SchedulerConfiguration = SchedulerConfiguration()) {
        self.mode = mode
        prefillNode = InstanceNode(model: prefillModel, memPool: prefillPool, role: .prefill, mode: mode, listen: nil,
                                   configuration: configuration)
        decodeNode = InstanceNode(model: decodeModel, memPool: decodePool, role: .decode, mode: mode, listen: nil,
                                  configuration: configuration)
        prefillNode.connect(decodeNode)
        decodeNode.connect(prefillNode)
    }

    public var prefill: EngineService { prefillNode.engine }
    public var decode: EngineService { decodeNode.engine }

    /// Queues a request on the prefill instance; tokens stream from wherever it is served.
    public func submit(_ request: ServingRequest) throws(EngineError) -> (RequestID, AsyncThrowingStream<RequestOutput, any Error>) {
        try prefillNode.generate(request, decodePeer: decodeNode.name)
    }

    /// What moved, as the decode instance counts it: handoffs, blocks received and skipped
    /// (delta), handoffs that waited for blocks, blocks returned to prefill.
    public var transferStats: TransferStats { decodeNode.transferStats }

    public var servedModel: ServedModel { prefill.model.served }

    public func abort(_ id: RequestID) {
        prefillNode.abort(id)
    }

    public var isStopped: Bool { prefill.isStopped && decode.isStopped }

    /// A request's KV must fit in both instances' pools.
    public var tokenCapacity: Int { min(prefill.tokenCapacity, decode.tokenCapacity) }

    /// Both instances' counts added up (blocks of the two pools together).
    public var stats: EngineStats { prefill.stats + decode.stats }

    /// Service: runs both instances until graceful shutdown.
    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.prefillNode.run() }
            group.addTask { try await self.decodeNode.run() }
            try await group.waitForAll()
        }
    }

    public func shutdown() {
        prefillNode.shutdown()
        decodeNode.shutdown()
    }
}

/// Shared mutable counters for closures that run on the instances' threads.
final class Counters: Sendable {
    let value = Mutex(TransferStats())
    private let flag = Atomic<Bool>(false)
    /// True the first time it is called.
    func first() -> Bool { !flag.exchange(true, ordering: .relaxed) }
}
