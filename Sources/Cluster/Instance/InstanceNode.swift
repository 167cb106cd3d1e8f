import Router
import Engine
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import MemPool
import ServiceLifecycle
import Synchronization
import Wire

/// One instance: an engine in a role with its MemPool. A prefill instance hands sequences to
/// the decode instance each request names; a decode instance continues them and, in
/// PD-Caching-3, returns their KV to the prefill instance that sent them. Peers are reached
/// through `PeerLink`s: instances of this process directly (`connect`), others over gRPC. With
/// a listen address the instance also serves gRPC (`memserve instance`).
public final class InstanceNode: Service, Sendable {
    public let engine: EngineService
    public let role: InstanceRole
    public let mode: PDMode
    let clients: PeerClients
    let logger = Logger(label: "memserve.instance")
    private let server: (GRPCServer<HTTP2ServerTransport.Posix>, HTTP2ServerTransport.Posix)?
    /// The name peers reach this instance by (an address once listening, or given).
    private let advertised: Mutex<String>
    /// Instances of this process, by name.
    private let localPeers = Mutex<[String: LocalLink]>([:])
    /// Prefill: handoffs in flight, to cancel when their client goes away.
    let sending = Mutex<[RequestID: Task<Void, Never>]>([:])
    /// Decode: where finished sequences' KV goes back to (PD-Caching-3), and returns in flight.
    let returnPeers = Mutex<[RequestID: String]>([:])
    let returning = Mutex<[RequestID: Promise<Void>]>([:])
    let counters = Counters()
    /// The cost model's inputs, once measured (`measureCosts`, at start-up).
    let costs = Mutex(CostInputs())
    /// Routers following this instance's cache (open `watchCache` streams).
    let watchers = Atomic<Int>(0)
    /// Fulfilled when a router has handed over this draining instance's prefixes.
    let handedOver = Promise<Void>()
    /// Mutual TLS on this instance's server and calls, or nil for plaintext.
    public var tls: PeerTLS? { clients.tls }
    /// Whether peers reach this instance over gRPC.
    var listens: Bool { server != nil }

    /// What moved through this instance: handoffs and blocks it sent (prefill) or received
    /// (decode), handoffs that waited for room, blocks returned (PD-Caching-3).
    public var transferStats: TransferStats { counters.value.withLock { $0 } }

    /// - Parameters:
    ///   - model, memPool: the instance's engine.
    ///   - listen: address to serve gRPC at (port 0 picks a free port; see `listeningAddress`),
    ///     or nil for an instance reached only from this process.
    ///   - advertise: the name peers use for this instance, if not the bound address.
    ///   - tls: mutual TLS for the server and for the calls to peers (nil: plaintext).
    public init(model: LoadedModel, memPool: MemPool, role: InstanceRole, mode: PDMode, listen: PeerAddress?,
                advertise: String? = nil, configuration: SchedulerConfiguration = SchedulerConfiguration(),
                tls: PeerTLS? = nil) {
        clients = PeerClients(tls: tls)
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
        advertised = Mutex(advertise ?? (listen == nil ? "inprocess:\(role.rawValue)-\(UInt32.random(in: 0...UInt32.max))" : ""))
        if let listen {
            var config = HTTP2ServerTransport.Posix.Config.defaults
            config.http2.maxFrameSize = WireTuning.maxFrameSize
            config.http2.targetWindowSize = WireTuning.windowSize
            config.rpc.maxRequestPayloadSize = WireTuning.maxMessageBytes
            config.connection.keepalive.clientBehavior = .init(minPingIntervalWithoutCalls: WireTuning.keepaliveTime,
                                                               allowWithoutCalls: true)
            let bind: GRPCNIOTransportCore.SocketAddress = listen.host.contains(":")
                ? .ipv6(host: listen.host, port: listen.port) : .ipv4(host: listen.host, port: listen.port)
            let transport = HTTP2ServerTransport.Posix(address: bind, transportSecurity: tls.serverSecurity, config: config)
            let service = InstanceService()
            server = (GRPCServer(transport: transport, services: [service]), transport)
            service.node = self
        } else {
            server = nil
        }
        if role == .prefill {
            engine.handoffHandler = { [unowned self] handoff, sink in self.startHandoff(handoff, sink) }
            engine.onCancel = { [unowned self] id in self.sending.withLock { $0[id] }?.cancel() }
        }
        if role == .decode && mode == .caching3 {
            engine.finishedHandler = { [unowned self] done in self.returnKV(done) }
        }
    }

    /// Makes `peer` (an instance of this process) reachable by its `name`, without the network.
    public func connect(_ peer: InstanceNode) {
        localPeers.withLock { $0[peer.name] = LocalLink(peer) }
    }

    /// The way to the peer called `name`: an instance of this process, or HOST:PORT over gRPC.
    func link(to name: String) throws -> any PeerLink {
        if let local = localPeers.withLock({ $0[name] }) { return local }
        let address = try PeerAddress(parsing: name)
        return GRPCLink(client: try clients.client(for: address), peer: address.description)
    }

    /// The bound address, once the server listens.
    public var listeningAddress: PeerAddress {
        get async throws {
            guard let (_, transport) = server else { throw RemoteError.noPeer("\(name) does not listen") }
            let a = try await transport.listeningAddress
            if let ip = a.ipv4 { return PeerAddress(host: ip.host, port: ip.port) }
            if let ip = a.ipv6 { return PeerAddress(host: ip.host, port: ip.port) }
            throw RemoteError.badAddress("\(a)")
        }
    }

    /// What peers call this instance (its address when it serves gRPC).
    public var name: String { advertised.withLock { $0 } }

    /// Service: serves until graceful shutdown, then drains the engine and closes connections.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                if let (server, _) = server {
                    group.addTask { try await server.serve() }
                    let bound = try await self.listeningAddress
                    self.advertised.withLock { if $0.isEmpty { $0 = bound.description } }
                }
                group.addTask { try await self.engine.run() }
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
        server?.0.beginGracefulShutdown()
        clients.shutdown()
    }

    /// Stops a request wherever it is: here, or on the decode instance it was handed to (the
    /// handoff task is cancelled, which aborts it there).
    public func abort(_ id: RequestID) {
        engine.abort(id)
        sending.withLock { $0[id] }?.cancel()
    }

    /// Queues a request here; a prefill instance hands its sequence to `decodePeer` (a name
    /// `link(to:)` resolves) after the first token. Outputs stream from wherever it is served.
    public func generate(_ request: ServingRequest,
                         decodePeer: String?) throws(EngineError) -> (RequestID, AsyncThrowingStream<RequestOutput, any Error>) {
        let id = engine.reserveID()
        let stream = try engine.submit(id: id, promptTokens: request.promptTokens, sampling: request.sampling,
                                       handoffTo: role == .prefill ? decodePeer : nil, traceID: request.traceID)
        return (id, stream)
    }

    /// What `Info` answers.
    var info: Memserve_V1_InstanceInfo { description.wire }
}
