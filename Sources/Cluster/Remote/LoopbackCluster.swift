import Router
import Engine
import Foundation
import MemPool
import ServiceLifecycle
import Synchronization

/// Several instances inside this process, joined over loopback gRPC exactly as separate
/// `memserve instance` processes would be, behind a `RemoteCluster` front end. `memserve
/// serve` uses it for more than one instance per role; `bench pd --transport grpc` for the
/// network path's cost.
public final class LoopbackCluster: InferenceBackend {
    public let nodes: [InstanceNode]
    public let front: RemoteCluster
    private let tasks: [Task<Void, any Error>]

    private init(nodes: [InstanceNode], front: RemoteCluster, tasks: [Task<Void, any Error>]) {
        self.nodes = nodes
        self.front = front
        self.tasks = tasks
    }

    /// Starts one instance per entry of `roles`, each with `threads` threads (weights shared
    /// with `model`) and a pool of `blocks` hot blocks, and a front end over them.
    public static func start(model: LoadedModel, roles: [InstanceRole], mode: PDMode, blocks: Int, threads: Int,
                             configuration: SchedulerConfiguration = SchedulerConfiguration()) async throws -> LoopbackCluster {
        var nodes: [InstanceNode] = [], tasks: [Task<Void, any Error>] = [], addresses: [PeerAddress] = []
        do {
            for role in roles {
                let m = model.sibling(threads: threads)
                let node = InstanceNode(model: m, memPool: try m.makeMemPool(hotBlocks: blocks), role: role, mode: mode,
                                        listen: PeerAddress(host: "127.0.0.1", port: 0), configuration: configuration)
                nodes.append(node)
                tasks.append(Task { try await node.run() })
                addresses.append(try await node.listeningAddress)
            }
            let front = try await RemoteCluster(model: model.served, peers: addresses)
            return LoopbackCluster(nodes: nodes, front: front, tasks: tasks)
        } catch {
            for n in nodes { n.shutdown() }
            for t in tasks { _ = try? await t.value }
            throw error
        }
    }

    public var servedModel: ServedModel { front.servedModel }
    public var tokenCapacity: Int { front.tokenCapacity }
    public var isStopped: Bool { front.isStopped && nodes.allSatisfy(\.engine.isStopped) }

    /// The instances' own counts (current, not the front end's last poll).
    public var stats: EngineStats { nodes.map(\.engine.stats).reduce(EngineStats(), +) }

    public func submit(_ request: ServingRequest) throws(EngineError) -> (RequestID, AsyncThrowingStream<RequestOutput, any Error>) {
        try front.submit(request)
    }

    public func abort(_ id: RequestID) { front.abort(id) }

    public func shutdown() {
        front.shutdown()
        for n in nodes { n.shutdown() }
    }

    /// Service: the front end until graceful shutdown, then the instances drain and stop.
    public func run() async throws {
        try await front.run()
        for n in nodes { n.shutdown() }
        for t in tasks { _ = try? await t.value }
    }

    /// Stops everything and waits for the instances' servers to close.
    public func stop() async {
        shutdown()
        for t in tasks { _ = try? await t.value }
    }
}
