import Serving
import Foundation
import GRPCCore
import Logging
import ServiceLifecycle
import Synchronization
import Wire

/// The front end's view of instances in other processes (`memserve serve --peers ...`): an
/// `InferenceBackend` that sends each request to a prefill (or colocated) instance and names
/// the decode instance it should hand the sequence to. Picks the least busy instance of each
/// role; the global scheduler of the next stage replaces this with prompt-tree locality.
public final class RemoteCluster: InferenceBackend {
    public struct Peer: Sendable {
        public var address: PeerAddress
        public var role: InstanceRole
        public var mode: PDMode
        public var tokenCapacity: Int
        public var stats: EngineStats
        /// Answered the last poll. Requests avoid instances that did not.
        public var healthy = true
    }

    public let servedModel: ServedModel
    public let mode: PDMode
    public let tokenCapacity: Int
    private let clients: PeerClients
    private let peers: Mutex<[Peer]>
    /// Requests in flight per peer (the load signal between polls).
    private let inFlight = Mutex<[PeerAddress: Int]>([:])
    private let tasks = Mutex<[RequestID: Task<Void, Never>]>([:])
    private let nextID = Atomic<UInt64>(1)
    private let state = Mutex((stopping: false, stopped: false))
    private let logger = Logger(label: "memserve.frontend")

    /// Asks every peer what it is. Fails unless the peers form a working system: at least one
    /// instance taking requests, a decode instance for prefill instances, one PD mode, one KV
    /// layout.
    public init(model: ServedModel, peers addresses: [PeerAddress], clients: PeerClients = PeerClients(),
                timeout: Duration = .seconds(10)) async throws {
        self.servedModel = model
        self.clients = clients
        var found: [Peer] = []
        var layout: (Int64, Int64)?
        for a in addresses {
            let info = try await Self.info(of: a, clients: clients, timeout: timeout)
            guard let role = InstanceRole(rawValue: info.role), let mode = PDMode(rawValue: info.pdMode) else {
                throw RemoteError.incompatiblePeer(peer: a.description, reason: "unknown role '\(info.role)' or mode '\(info.pdMode)'")
            }
            if let layout, layout != (info.blockTokens, info.blockBytes) {
                throw RemoteError.incompatiblePeer(peer: a.description, reason: "its KV blocks (\(info.blockTokens) tokens, \(info.blockBytes) bytes) differ from the other instances'")
            }
            layout = (info.blockTokens, info.blockBytes)
            if info.model != model.name {
                Logger(label: "memserve.frontend").warning("instance \(a) serves '\(info.model)', the front end tokenizes for '\(model.name)'")
            }
            found.append(Peer(address: a, role: role, mode: mode, tokenCapacity: Int(info.tokenCapacity), stats: EngineStats(wire: info.stats)))
        }
        let pd = found.filter { $0.role != .colocated }
        if found.allSatisfy({ $0.role == .decode }) { throw RemoteError.noPeer("no prefill or colocated instance among the peers") }
        if pd.contains(where: { $0.role == .prefill }) && !pd.contains(where: { $0.role == .decode }) {
            throw RemoteError.noPeer("prefill instances need at least one decode instance")
        }
        let modes = Set(pd.map(\.mode))
        if modes.count > 1 { throw RemoteError.noPeer("the instances run different PD modes: \(modes.map(\.rawValue).sorted())") }
        mode = modes.first ?? .caching1
        tokenCapacity = found.map(\.tokenCapacity).min() ?? 0
        peers = Mutex(found)
    }

    static func info(of address: PeerAddress, clients: PeerClients, timeout: Duration) async throws -> Memserve_V1_InstanceInfo {
        var options = CallOptions.defaults
        options.timeout = timeout
        do {
            return try await clients.client(for: address).info(Memserve_V1_InfoRequest(), options: options)
        } catch {
            throw RemoteError.peerFailed(peer: address.description, reason: (error as? RPCError)?.message ?? "\(error)")
        }
    }

    public var peerList: [Peer] { peers.withLock { $0 } }

    /// Least loaded healthy instance of a role: requests in flight from here, then the last
    /// polled queue.
    private func pick(_ roles: Set<InstanceRole>) -> PeerAddress? {
        let all = peers.withLock { $0 }.filter { roles.contains($0.role) && $0.healthy }
        let load = inFlight.withLock { $0 }
        return all.min { a, b in
            let la = load[a.address, default: 0] + a.stats.waiting, lb = load[b.address, default: 0] + b.stats.waiting
            return la < lb
        }?.address
    }

    public func submit(_ served: ServingRequest) throws(EngineError) -> (RequestID, AsyncThrowingStream<RequestOutput, any Error>) {
        let promptTokens = served.promptTokens, sampling = served.sampling
        if promptTokens.isEmpty { throw .emptyPrompt }
        if let why = sampling.validationError() { throw .invalidSampling(why) }
        if promptTokens.count + 1 > min(servedModel.maxContext, tokenCapacity) {
            throw .promptTooLong(tokens: promptTokens.count, limit: min(servedModel.maxContext, tokenCapacity))
        }
        if state.withLock({ $0.stopping }) { throw .shuttingDown }
        let id = nextID.add(1, ordering: .relaxed).oldValue
        guard let entry = pick([.prefill, .colocated]) else {
            return (id, Self.failed(RemoteError.noPeer("no prefill or colocated instance is reachable")))
        }
        var decode: PeerAddress?
        if peers.withLock({ $0.first { $0.address == entry }?.role }) == .prefill {
            decode = pick([.decode])
            if decode == nil { return (id, Self.failed(RemoteError.noPeer("no decode instance is reachable"))) }
        }
        var request = Memserve_V1_GenerateRequest()
        request.promptTokens = promptTokens
        request.sampling = sampling.wire
        request.decodePeer = decode?.description ?? ""
        let (stream, continuation) = AsyncThrowingStream<RequestOutput, any Error>.makeStream()
        let involved = [entry] + (decode.map { [$0] } ?? [])
        inFlight.withLock { for p in involved { $0[p, default: 0] += 1 } }
        let clients = clients
        let task = Task {
            defer {
                inFlight.withLock { for p in involved { $0[p, default: 1] -= 1 } }
                _ = tasks.withLock { $0.removeValue(forKey: id) }
            }
            do {
                let client = try clients.client(for: entry)
                try await client.generate(request: ClientRequest(message: request)) { response in
                    for try await event in response.messages {
                        continuation.yield(RequestOutput(wire: event.output, id: id))
                    }
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: Self.frontendError(error, entry: entry))
                // An instance may be gone: find out now rather than at the next poll.
                if !Task.isCancelled { await self.poll() }
            }
        }
        tasks.withLock { $0[id] = task }
        continuation.onTermination = { reason in
            if case .cancelled = reason { task.cancel() }
        }
        return (id, stream)
    }

    /// What a client is told when an instance fails: the engine's own refusal where it was one.
    static func frontendError(_ error: any Error, entry: PeerAddress) -> any Error {
        guard let rpc = error as? RPCError else { return error }
        switch rpc.code {
        case .invalidArgument: return EngineError.invalidSampling(rpc.message)
        default: return RemoteError.peerFailed(peer: entry.description, reason: rpc.message)
        }
    }

    public func abort(_ id: RequestID) {
        tasks.withLock { $0[id] }?.cancel()
    }

    /// All instances' counts, as of the last poll.
    public var stats: EngineStats { peers.withLock { $0.map(\.stats).reduce(EngineStats(), +) } }

    public var isStopped: Bool { state.withLock { $0.stopped } }

    public func shutdown() {
        state.withLock { $0.stopping = true }
    }

    /// Service: polls the instances' load until shutdown, then waits for requests in flight.
    public func run() async throws {
        await withGracefulShutdownHandler {
            while !state.withLock({ $0.stopping }) {
                await poll()
                try? await Task.sleep(for: .milliseconds(500))
            }
            while !tasks.withLock({ $0.isEmpty }) { try? await Task.sleep(for: .milliseconds(20)) }
            clients.shutdown()
            state.withLock { $0.stopped = true }
        } onGracefulShutdown: {
            self.shutdown()
        }
    }

    /// Refreshes every peer's counts and health (a peer that does not answer within a second
    /// is skipped by new requests until it answers again).
    public func poll() async {
        for p in peerList {
            let result = await Result(awaiting: { () async throws(any Error) -> Memserve_V1_InstanceInfo in
                try await Self.info(of: p.address, clients: clients, timeout: .seconds(2))
            })
            let info = try? result.get()
            peers.withLock { all in
                guard let i = all.firstIndex(where: { $0.address == p.address }) else { return }
                if all[i].healthy != (info != nil) {
                    logger.warning("instance \(p.address) is \(info != nil ? "back" : "not answering: \(result)")")
                }
                all[i].healthy = info != nil
                if let info { all[i].stats = EngineStats(wire: info.stats) }
            }
        }
    }

    /// A stream that fails at once (the request never started).
    static func failed(_ error: any Error) -> AsyncThrowingStream<RequestOutput, any Error> {
        AsyncThrowingStream { $0.finish(throwing: error) }
    }
}

extension Result where Failure == any Error {
    init(awaiting body: () async throws(any Error) -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
