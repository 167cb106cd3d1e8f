import Engine
import Foundation
import MemPool
import Router
import ServiceLifecycle

/// What to run in one process: instances per role, how they talk, and how memory and threads
/// are split among them. Data only.
public struct DeploymentSpec: Sendable {
    /// How instances of one process reach each other and the router reaches them.
    public enum Transport: String, Sendable, CaseIterable {
        /// Direct calls; KV moves by memory copy.
        case inProcess = "in-process"
        /// Loopback gRPC, exactly as separate processes would talk.
        case loopbackGRPC = "grpc"
    }

    public var colocated = 1
    public var prefill = 0
    public var decode = 0
    public var mode: PDMode = .caching3
    public var transport: Transport = .inProcess
    /// Threads and KV blocks of the whole process, split evenly among the instances.
    public var threads = 1
    public var hotBlocks = 1
    public var coldBlocks = 0
    /// The share of each instance's blocks that may keep other instances' prefixes (the peer
    /// tier of the elastic pool); 0 turns the peer tier off.
    public var peerShare = 0.25
    public var scheduler = SchedulerConfiguration()
    public var router = ClusterRouter.Configuration()
    /// Mutual TLS on the loopback gRPC links (`Transport.loopbackGRPC`); nil: plaintext.
    public var tls: PeerTLS?

    public init() {}

    public var instanceCount: Int { colocated + prefill + decode }

    /// The roles, one per instance.
    public var roles: [InstanceRole] {
        Array(repeating: .colocated, count: colocated) + Array(repeating: .prefill, count: prefill)
            + Array(repeating: .decode, count: decode)
    }

    /// Why this deployment cannot run, or nil.
    public var problem: String? {
        if colocated < 0 || prefill < 0 || decode < 0 { return "instance counts must not be negative" }
        if instanceCount == 0 { return "no instance to run" }
        if (prefill == 0) != (decode == 0) { return "prefill and decode instances go together" }
        if colocated > 0 && prefill > 0 { return "colocated and disaggregated instances do not mix in one deployment" }
        return nil
    }
}

/// Builds every deployment of one process, so each option reaches every instance: one engine
/// alone, or instances behind a `ClusterRouter` (the global scheduler) that is the backend.
public enum Deployment {
    /// A single colocated instance is its engine; anything else is instances and a router.
    public static func start(model: LoadedModel, spec: DeploymentSpec) async throws -> any InferenceBackend {
        if let problem = spec.problem { throw RemoteError.noPeer(problem) }
        if spec.instanceCount == 1 {
            return EngineService(model: model, memPool: try model.makeMemPool(hotBlocks: spec.hotBlocks, coldBlocks: spec.coldBlocks),
                                 configuration: spec.scheduler)
        }
        return try await RoutedDeployment.start(model: model, spec: spec)
    }
}

/// Instances of this process behind a router: the backend of `serve --instances N` and
/// `serve --prefill N --decode M`.
public final class RoutedDeployment: InferenceBackend {
    public let nodes: [InstanceNode]
    public let router: ClusterRouter
    private let tasks: [Task<Void, any Error>]

    private init(nodes: [InstanceNode], router: ClusterRouter, tasks: [Task<Void, any Error>]) {
        self.nodes = nodes
        self.router = router
        self.tasks = tasks
    }

    public static func start(model: LoadedModel, spec: DeploymentSpec) async throws -> RoutedDeployment {
        let n = spec.instanceCount
        let threads = max(1, spec.threads / n)
        var nodes: [InstanceNode] = [], tasks: [Task<Void, any Error>] = []
        let clients = PeerClients(tls: spec.tls)
        let router = ClusterRouter(model: model.served, configuration: spec.router, clients: clients)
        do {
            for role in spec.roles {
                let m = model.sibling(threads: threads)
                let pool = try m.makeMemPool(hotBlocks: max(1, spec.hotBlocks / n), coldBlocks: spec.coldBlocks / n,
                                             peerShare: spec.peerShare)
                let listen = spec.transport == .loopbackGRPC ? PeerAddress(host: "127.0.0.1", port: 0) : nil
                let node = InstanceNode(model: m, memPool: pool, role: role, mode: spec.mode, listen: listen,
                                        configuration: spec.scheduler, tls: spec.tls)
                nodes.append(node)
                tasks.append(Task { try await node.run() })
            }
            if spec.transport == .inProcess {
                for a in nodes { for b in nodes where a !== b { a.connect(b) } }
            }
            // Every node runs the same model with the same threads on this host: the first
            // one's prefill measurement stands for all (see `measureCosts(prefill:)`).
            var prefill: [CostInputs.PrefillPoint]? = nil
            for node in nodes {
                if spec.transport == .loopbackGRPC { _ = try await node.listeningAddress }
                await node.measureCosts(prefill: prefill)
                if prefill == nil, case let p = node.costs.withLock({ $0.prefill }), !p.isEmpty { prefill = p }
                let member: any RoutedInstance = spec.transport == .inProcess
                    ? node : GRPCInstance(address: try await node.listeningAddress, clients: clients)
                try await router.add(member)
            }
            try router.checkComplete()
            return RoutedDeployment(nodes: nodes, router: router, tasks: tasks)
        } catch {
            for n in nodes { n.shutdown() }
            for t in tasks { _ = try? await t.value }
            throw error
        }
    }

    public var servedModel: ServedModel { router.servedModel }
    public var tokenCapacity: Int { router.tokenCapacity }
    public var isStopped: Bool { router.isStopped && nodes.allSatisfy(\.engine.isStopped) }
    public var canServe: Bool { router.canServe }

    /// The instances' own counts (current, not the router's last report).
    public var stats: EngineStats { nodes.map(\.engine.stats).reduce(EngineStats(), +) }

    public func submit(_ request: ServingRequest) throws(EngineError) -> (RequestID, AsyncThrowingStream<RequestOutput, any Error>) {
        try router.submit(request)
    }

    public func abort(_ id: RequestID) { router.abort(id) }

    public func shutdown() {
        router.shutdown()
        for n in nodes { n.shutdown() }
    }

    /// Service: the router until graceful shutdown, then the instances drain and stop.
    public func run() async throws {
        try await router.run()
        for n in nodes { n.shutdown() }
        for t in tasks { _ = try? await t.value }
    }

    /// Stops everything and waits for the instances to close.
    public func stop() async {
        shutdown()
        for t in tasks { _ = try? await t.value }
    }
}

extension RoutedDeployment: RoutingIntrospection {
    public func explainRoute(_ request: ServingRequest) -> Data { router.explainRoute(request) }
    public func treeSummary() -> Data { router.treeSummary() }
}
