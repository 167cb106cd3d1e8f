import Engine
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import MemPool
import ServiceLifecycle
import Synchronization
import Wire

/// One instance as a process (`memserve instance`): an engine in a role, with its MemPool,
/// served over gRPC. A prefill instance hands sequences to decode instances named by the front
/// end; a decode instance continues them and, in PD-Caching-3, returns their KV to the prefill
/// instance that sent them.
public final class InstanceNode: Service, Sendable {
    public let engine: EngineService
    public let role: InstanceRole
    public let mode: PDMode
    let clients = PeerClients()
    let logger = Logger(label: "memserve.instance")
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let transport: HTTP2ServerTransport.Posix
    /// The address peers reach this instance at (set once listening; may be given explicitly).
    private let advertised: Mutex<String>
    /// Prefill: each request's decode instance, and the transfer tasks to cancel on abort.
    let routes = Mutex<[RequestID: PeerAddress]>([:])
    let sending = Mutex<[RequestID: Task<Void, Never>]>([:])
    /// Decode: where finished sequences' KV goes back to (PD-Caching-3), and returns in flight.
    let returnPeers = Mutex<[RequestID: PeerAddress]>([:])
    let returning = Mutex<[RequestID: Promise<Void>]>([:])
    let counters = Counters()

    /// What moved through this instance: handoffs and blocks it sent (prefill) or received
    /// (decode), handoffs that waited for room, blocks returned (PD-Caching-3).
    public var transferStats: TransferStats { counters.value.withLock { $0 } }

    /// - Parameters:
    ///   - model, memPool: the instance's engine.
    ///   - listen: address to bind (port 0 picks a free port; see `listeningAddress`).
    ///   - advertise: address peers use to reach this instance, if not the bound one.
    public init(model: LoadedModel, memPool: MemPool, role: InstanceRole, mode: PDMode, listen: PeerAddress,
                advertise: String? = nil, configuration: SchedulerConfiguration = SchedulerConfiguration()) {
        var c = configuration
        c.role = role
        switch role {
        case .prefill: c.prefixCaching = configuration.prefixCaching && mode.prefillCaches
        case .decode:
            c.prefixCaching = configuration.prefixCaching && mode.decodeCaches
            c.retainFinished = mode == .caching3
        case .colocated: break
        }
        self.role = role
        self.mode = mode
        engine = EngineService(model: model, memPool: memPool, configuration: c)
        advertised = Mutex(advertise ?? "")
        var config = HTTP2ServerTransport.Posix.Config.defaults
        config.http2.maxFrameSize = WireTuning.maxFrameSize
        config.http2.targetWindowSize = WireTuning.windowSize
        config.rpc.maxRequestPayloadSize = WireTuning.maxMessageBytes
        config.connection.keepalive.clientBehavior = .init(minPingIntervalWithoutCalls: WireTuning.keepaliveTime,
                                                           allowWithoutCalls: true)
        let bind: GRPCNIOTransportCore.SocketAddress = listen.host.contains(":")
            ? .ipv6(host: listen.host, port: listen.port) : .ipv4(host: listen.host, port: listen.port)
        transport = HTTP2ServerTransport.Posix(address: bind,
                                               transportSecurity: .plaintext, config: config)
        let service = InstanceService()
        server = GRPCServer(transport: transport, services: [service])
        service.node = self
        if role == .prefill {
            engine.handoffHandler = { [unowned self] handoff, sink in self.startHandoff(handoff, sink) }
            engine.onCancel = { [unowned self] id in self.sending.withLock { $0[id] }?.cancel() }
        }
        if role == .decode && mode == .caching3 {
            engine.finishedHandler = { [unowned self] done in self.returnKV(done) }
        }
    }

    /// The bound address, once the server listens.
    public var listeningAddress: PeerAddress {
        get async throws {
            let a = try await transport.listeningAddress
            if let ip = a.ipv4 { return PeerAddress(host: ip.host, port: ip.port) }
            if let ip = a.ipv6 { return PeerAddress(host: ip.host, port: ip.port) }
            throw RemoteError.badAddress("\(a)")
        }
    }

    /// What peers are told to call this instance at.
    var address: String { advertised.withLock { $0 } }

    /// Service: serves until graceful shutdown, then drains the engine and closes connections.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.server.serve() }
                group.addTask {
                    let bound = try await self.listeningAddress
                    self.advertised.withLock { if $0.isEmpty { $0 = bound.description } }
                    try await self.engine.run()
                }
                try await group.next()
                self.shutdown()
                try await group.waitForAll()
            }
        } onGracefulShutdown: {
            self.shutdown()
        }
    }

    /// Stops serving: the engine drains, then the server and peer connections close.
    public func shutdown() {
        engine.shutdown()
        server.beginGracefulShutdown()
        clients.shutdown()
    }

    /// Counts for Info.
    var info: Memserve_V1_InstanceInfo {
        var i = Memserve_V1_InstanceInfo()
        i.role = role.rawValue
        i.pdMode = mode.rawValue
        i.model = engine.model.name
        i.blockTokens = Int64(engine.core.memPool.blockTokens)
        i.blockBytes = Int64(engine.core.memPool.blockBytes)
        i.tokenCapacity = Int64(engine.tokenCapacity)
        i.maxContext = Int64(engine.model.transformer.maxContext)
        i.stats = engine.stats.wire
        i.address = address
        return i
    }
}
