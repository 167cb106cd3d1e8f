import MemPool
import Serving

/// What a router knows of an instance when it joins: role, mode, model, KV layout, limits and
/// the cost model's inputs it measured at start-up. Data only.
public struct InstanceDescription: Sendable, Equatable {
    /// The name the router and other instances reach it by (HOST:PORT, or an in-process name).
    public var name: String
    public var role: InstanceRole
    public var mode: PDMode
    public var model: String
    public var blockTokens: Int
    public var blockBytes: Int
    /// Most tokens one request's KV can occupy there.
    public var tokenCapacity: Int
    public var maxContext: Int
    public var costs: CostInputs
    public var stats: EngineStats

    public init(name: String, role: InstanceRole, mode: PDMode, model: String, blockTokens: Int, blockBytes: Int,
                tokenCapacity: Int, maxContext: Int, costs: CostInputs, stats: EngineStats) {
        self.name = name
        self.role = role
        self.mode = mode
        self.model = model
        self.blockTokens = blockTokens
        self.blockBytes = blockBytes
        self.tokenCapacity = tokenCapacity
        self.maxContext = maxContext
        self.costs = costs
        self.stats = stats
    }
}

/// An instance's measured speeds, the inputs of the transfer-or-recompute cost model.
public struct CostInputs: Sendable, Equatable, Codable {
    /// Seconds to prefill `tokens` new tokens with nothing cached, at a few lengths (empty:
    /// not measured yet).
    public var prefill: [PrefillPoint]
    /// KV bytes per second to a peer, and fixed seconds per transfer.
    public var transferBytesPerSecond: Double
    public var transferLatencySeconds: Double

    public struct PrefillPoint: Sendable, Equatable, Codable {
        public var tokens: Int
        public var seconds: Double
        public init(tokens: Int, seconds: Double) {
            self.tokens = tokens
            self.seconds = seconds
        }
    }

    public init(prefill: [PrefillPoint] = [], transferBytesPerSecond: Double = 0, transferLatencySeconds: Double = 0) {
        self.prefill = prefill
        self.transferBytesPerSecond = transferBytesPerSecond
        self.transferLatencySeconds = transferLatencySeconds
    }

    /// Whether the instance has reported measurements.
    public var isMeasured: Bool { !prefill.isEmpty && transferBytesPerSecond > 0 }
}

/// What an instance streams to a router that watches its cache (the `WatchCache` RPC).
public enum CacheUpdate: Sendable, Equatable {
    /// The whole prompt tree; `seq` is the number of the last event it reflects.
    case snapshot(seq: UInt64, entries: [CachedBlockEntry])
    /// One MemPool event; numbers follow the snapshot's consecutively (a gap means lost events).
    case event(seq: UInt64, MemPoolEvent)
    /// The instance's counts changed.
    case load(EngineStats)
}

/// An instance as a router drives it: over gRPC (`GRPCInstance`) or in this process
/// (`InstanceNode`). The router is written once against this protocol.
public protocol RoutedInstance: Sendable {
    /// The name requests and other instances reach it by.
    var name: String { get }
    /// Role, layout, limits, measured costs and current load.
    func describe() async throws -> InstanceDescription
    /// Serves a request; a prefill instance hands the sequence to `decodePeer`. The stream
    /// fails with the instance's error (an `EngineError` for a refused request, a
    /// `RemoteError` for an instance that failed).
    func generate(_ request: ServingRequest, decodePeer: String?) -> AsyncThrowingStream<RequestOutput, any Error>
    /// A snapshot of the prompt tree, then its events and load changes, until the consumer
    /// stops or the instance goes away.
    func watchCache() -> AsyncThrowingStream<CacheUpdate, any Error>
    /// The scheduler's transfer order: send the KV cached here for the first `blocks` blocks
    /// of `tokens` to `destination`. Returns the blocks the destination now caches and the
    /// blocks moved.
    func pushPrefix(tokens: [Int32], blocks: Int, to destination: String, traceID: String) async throws -> (cached: Int, moved: Int)
    /// The scheduler's spill order (the peer tier): of the prefixes this instance just evicted
    /// (`hashes`), send those it still has staged to `destination`, with the rest of their path,
    /// as the destination's guest blocks.
    func spill(hashes: [PrefixHash], to destination: String, traceID: String) async throws -> SpillResult
    /// Tells a draining instance that this router has handed over its only-copy prefixes.
    func drained() async throws
}

/// What a spill order moved. Data only.
public struct SpillResult: Sendable, Equatable {
    /// The trace id that marks a handover of a draining instance (blocks it caches, not staged
    /// evictions) on the wire.
    public static let drainTrace = "drain"

    /// Prefixes sent, staged blocks among them, and blocks the destination took (it keeps what
    /// it already had).
    public var prefixes = 0
    public var stagedBlocks = 0
    public var movedBlocks = 0

    public init(prefixes: Int = 0, stagedBlocks: Int = 0, movedBlocks: Int = 0) {
        self.prefixes = prefixes
        self.stagedBlocks = stagedBlocks
        self.movedBlocks = movedBlocks
    }
}
