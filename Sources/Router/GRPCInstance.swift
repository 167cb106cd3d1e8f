import GRPCCore
import MemPool
import Serving
import Wire

/// An instance in another process, driven over the `Instance` gRPC service.
public struct GRPCInstance: RoutedInstance {
    public let address: PeerAddress
    private let clients: PeerClients

    public init(address: PeerAddress, clients: PeerClients) {
        self.address = address
        self.clients = clients
    }

    public var name: String { address.description }

    public func describe() async throws -> InstanceDescription {
        var options = CallOptions.defaults
        // Generous: a peer that is down fails at once; one on a loaded machine may answer late.
        options.timeout = .seconds(30)
        do {
            let info = try await clients.client(for: address).info(Memserve_V1_InfoRequest(), options: options)
            return try InstanceDescription(wire: info, name: name)
        } catch let e as RemoteError {
            throw e
        } catch {
            throw RemoteError.peerFailed(peer: name, reason: RemoteError.reason(error))
        }
    }

    public func generate(_ request: ServingRequest, decodePeer: String?) -> AsyncThrowingStream<RequestOutput, any Error> {
        var message = Memserve_V1_GenerateRequest()
        message.promptTokens = request.promptTokens
        message.sampling = request.sampling.wire
        message.decodePeer = decodePeer ?? ""
        message.traceID = request.traceID
        let (stream, continuation) = AsyncThrowingStream<RequestOutput, any Error>.makeStream()
        let clients = clients, address = address, name = name
        let task = Task {
            do {
                let client = try clients.client(for: address)
                try await client.generate(request: ClientRequest(message: message)) { response in
                    for try await event in response.messages {
                        continuation.yield(RequestOutput(wire: event.output, id: 0))
                    }
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: Self.mapped(error, peer: name))
            }
        }
        continuation.onTermination = { reason in
            if case .cancelled = reason {
                task.cancel()
                clients.noteCancelled(address)
            }
        }
        return stream
    }

    public func watchCache() -> AsyncThrowingStream<CacheUpdate, any Error> {
        let (stream, continuation) = AsyncThrowingStream<CacheUpdate, any Error>.makeStream()
        let clients = clients, address = address, name = name
        let task = Task {
            do {
                let client = try clients.client(for: address)
                try await client.watchCache(request: ClientRequest(message: Memserve_V1_WatchCacheRequest()),
                                            options: PeerClients.callOptions) { response in
                    for try await update in response.messages {
                        continuation.yield(try CacheUpdate(wire: update))
                    }
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: Self.mapped(error, peer: name))
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    public func pushPrefix(tokens: [Int32], blocks: Int, to destination: String, traceID: String) async throws -> (cached: Int, moved: Int) {
        var message = Memserve_V1_PushPrefixRequest()
        message.tokens = tokens
        message.blocks = Int64(blocks)
        message.destination = destination
        message.traceID = traceID
        do {
            let reply = try await clients.client(for: address).pushPrefix(message)
            return (Int(reply.cachedBlocks), Int(reply.movedBlocks))
        } catch {
            throw Self.mapped(error, peer: name)
        }
    }

    public func spill(hashes: [PrefixHash], to destination: String, traceID: String) async throws -> SpillResult {
        var message = Memserve_V1_SpillRequest()
        message.hashes = hashes.map(\.value)
        message.destination = destination
        message.traceID = traceID
        do {
            let reply = try await clients.client(for: address).spill(message)
            return SpillResult(prefixes: Int(reply.prefixes), stagedBlocks: Int(reply.stagedBlocks), movedBlocks: Int(reply.movedBlocks))
        } catch {
            throw Self.mapped(error, peer: name)
        }
    }

    public func drained() async throws {
        var message = Memserve_V1_SpillRequest()
        message.final = true
        do {
            _ = try await clients.client(for: address).spill(message)
        } catch {
            throw Self.mapped(error, peer: name)
        }
    }

    /// A refusal of the request stays the engine's error (a 4xx at the edge); anything else is
    /// the instance failing.
    static func mapped(_ error: any Error, peer: String) -> any Error {
        guard let rpc = error as? RPCError else {
            return error is CancellationError || error is RemoteError ? error : RemoteError.peerFailed(peer: peer, reason: "\(error)")
        }
        switch rpc.code {
        case .invalidArgument: return EngineError.invalidSampling(rpc.message)
        default: return RemoteError.peerFailed(peer: peer, reason: RemoteError.reason(rpc))
        }
    }
}
