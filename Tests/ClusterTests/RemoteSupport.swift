import Router
import Cluster
import Engine
import Foundation
import GGUF
import GRPCCore
import MemPool
import Model
import Testing
import Wire

/// Instances served over loopback gRPC inside the test process, and a front end over them.
struct LocalNodes {
    var nodes: [InstanceNode]
    var tasks: [Task<Void, any Error>]
    /// The front end (none for a set of decode instances alone).
    var frontEnd: ClusterRouter?
    var addresses: [PeerAddress]

    var front: ClusterRouter { frontEnd! }

    /// These tests check that load spreads over instances; which instance caches what is the
    /// routing tests' concern.
    static var spreading: ClusterRouter.Configuration {
        var c = ClusterRouter.Configuration()
        c.policy = .leastLoaded
        return c
    }

    var prefill: InstanceNode { nodes.first { $0.role == .prefill }! }
    var decode: InstanceNode { nodes.first { $0.role == .decode }! }

    /// Starts one instance per role in `roles`, each with its own engine thread and pool.
    static func start(_ roles: [InstanceRole], mode: PDMode, blocks: [Int]? = nil) async throws -> LocalNodes {
        var nodes: [InstanceNode] = [], tasks: [Task<Void, any Error>] = [], addresses: [PeerAddress] = []
        for (i, role) in roles.enumerated() {
            let m = PDClusterTests.base.sibling(threads: 1)
            let node = InstanceNode(model: m, memPool: try m.makeMemPool(hotBlocks: blocks?[i] ?? 96), role: role, mode: mode,
                                    listen: PeerAddress(host: "127.0.0.1", port: 0))
            tasks.append(Task { try await node.run() })
            nodes.append(node)
            addresses.append(try await node.listeningAddress)
        }
        let front = roles.contains(where: { $0 != .decode }) ? try await ClusterRouter.connect(model: PDClusterTests.base.served, peers: addresses, configuration: LocalNodes.spreading) : nil
        return LocalNodes(nodes: nodes, tasks: tasks, frontEnd: front, addresses: addresses)
    }

    func stop() async {
        frontEnd?.shutdown()
        for n in nodes { n.shutdown() }
        for t in tasks { _ = try? await t.value }
    }

    /// Waits until no instance holds a block or a request.
    func waitIdle() async throws {
        for _ in 0..<600 {
            if nodes.allSatisfy({ Self.idle($0.engine.stats) }) { return }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    static func idle(_ s: EngineStats) -> Bool {
        s.hot.used == 0 && s.running == 0 && s.waiting == 0 && s.pendingHandoffs == 0
    }
}

/// A raw client of one instance, for sending it what a well-behaved peer would not.
struct RawPeer {
    let clients = PeerClients()
    let client: PeerClients.Client

    init(_ address: PeerAddress) throws { client = try clients.client(for: address) }

    /// Runs a TransferWithInsert whose messages are `messages` (sent without waiting for the
    /// receiver); returns the replies or the error status.
    func transfer(_ messages: [Memserve_V1_TransferMessage]) async -> Result<[Memserve_V1_TransferReply], RPCError> {
        let request = StreamingClientRequest<Memserve_V1_TransferMessage> { writer in
            for m in messages { try await writer.write(m) }
        }
        do {
            return .success(try await client.transferWithInsert(request: request, options: PeerClients.callOptions) { response in
                var replies: [Memserve_V1_TransferReply] = []
                for try await r in response.messages { replies.append(r) }
                return replies
            })
        } catch let e as RPCError {
            return .failure(e)
        } catch {
            return .failure(RPCError(code: .unknown, message: "\(error)"))
        }
    }

    func generate(_ request: Memserve_V1_GenerateRequest) async -> Result<[Memserve_V1_Output], RPCError> {
        do {
            return .success(try await client.generate(request: ClientRequest(message: request)) { response in
                var outs: [Memserve_V1_Output] = []
                for try await e in response.messages { outs.append(e.output) }
                return outs
            })
        } catch let e as RPCError {
            return .failure(e)
        } catch {
            return .failure(RPCError(code: .unknown, message: "\(error)"))
        }
    }

    static func transferHeader(tokens: [Int32], blocks: Int, blockBytes: Int) -> Memserve_V1_TransferMessage {
        var m = Memserve_V1_TransferMessage()
        m.header.tokens = tokens
        m.header.blockCount = Int64(blocks)
        m.header.blockBytes = Int64(blockBytes)
        return m
    }

    static func chunk(first: Int, blocks: Int, blockBytes: Int) -> Memserve_V1_TransferMessage {
        var m = Memserve_V1_TransferMessage()
        m.chunk.firstBlock = Int64(first)
        m.chunk.data = Data(repeating: 1, count: blocks * blockBytes)
        return m
    }

    static func request(_ prompt: [Int32], maxTokens: Int, decodePeer: String = "") -> Memserve_V1_GenerateRequest {
        var r = Memserve_V1_GenerateRequest()
        r.promptTokens = prompt
        r.sampling.temperature = 0
        r.sampling.topP = 1
        r.sampling.repetitionPenalty = 1
        r.sampling.maxTokens = Int64(maxTokens)
        r.sampling.ignoreEos = true
        r.decodePeer = decodePeer
        return r
    }
}
