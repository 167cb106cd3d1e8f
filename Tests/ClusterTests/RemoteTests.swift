import Router
import Cluster
import Engine
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Kernels
import MemPool
import Model
import Synchronization
import Testing
import Wire

/// Disaggregation over gRPC between instances served on loopback (in this process, so the
/// tests can read their pools directly): the same outputs as one engine, transfers that move
/// only what they must, and peers that misbehave or fail without leaking a block.
@Suite("PD disaggregation over gRPC", .serialized)
struct RemoteTests {
    /// The colocated engine's greedy answers to `PDClusterTests.conversation` (computed once).
    static let cache = Mutex<[[Int32]]?>(nil)
    static func expected() async throws -> [[Int32]] {
        if let e = cache.withLock({ $0 }) { return e }
        let colocated = EngineService(model: PDClusterTests.base.sibling(threads: 1),
                                      memPool: try PDClusterTests.base.makeMemPool(hotBlocks: 96))
        defer { colocated.shutdown() }
        let e = try await PDClusterTests.conversation {
            try colocated.submit(promptTokens: $0, sampling: PDClusterTests.params(10)).1
        }.map(\.tokens)
        cache.withLock { $0 = e }
        return e
    }

    @Test("every mode over gRPC reproduces the colocated greedy output", arguments: PDMode.allCases)
    func sameOutputAsColocated(mode: PDMode) async throws {
        let expected = try await Self.expected()
        let n = try await LocalNodes.start([.prefill, .decode], mode: mode)
        let got = try await PDClusterTests.conversation { try n.front.submit(promptTokens: $0, sampling: PDClusterTests.params(10)).1 }
        #expect(got.map(\.tokens) == expected)
        try await n.waitIdle()
        let p = n.prefill.transferStats, d = n.decode.transferStats
        #expect(p.handoffs == 4 && d.handoffs == 4)
        #expect(n.nodes.allSatisfy { LocalNodes.idle($0.engine.stats) }, "no block leaks")
        switch mode {
        case .basic:
            #expect(got.allSatisfy { $0.cached == 0 })
            #expect(p.blocksSkipped == 0 && n.decode.engine.stats.hot.cached == 0)
        case .caching1:
            #expect(got.dropFirst().allSatisfy { $0.cached > 0 }, "prefill reuses earlier prompts")
            #expect(p.blocksSkipped == 0 && n.decode.engine.stats.hot.cached == 0)
        case .caching2:
            #expect(p.blocksSkipped > 0 && p.blocksSkipped == d.blocksSkipped, "later turns send decode only the delta")
            #expect(d.blocksReturned == 0)
        case .caching3:
            #expect(p.blocksSkipped > 0)
            #expect(d.blocksReturned > 0, "decode sends answers' KV back")
            for (prev, next) in zip(got.map(\.cached), got.dropFirst().map(\.cached)) { #expect(next > prev) }
        }
        await n.stop()
    }

    @Test("two instances per role share the load and answer like one engine")
    func twoPerRole() async throws {
        let expected = try await Self.expected()
        var spec = DeploymentSpec()
        spec.colocated = 0
        spec.prefill = 2
        spec.decode = 2
        spec.transport = .loopbackGRPC
        spec.threads = 4
        spec.hotBlocks = 4 * 96
        spec.router = LocalNodes.spreading
        let c = try await RoutedDeployment.start(model: PDClusterTests.base, spec: spec)
        let answers = try await withThrowingTaskGroup(of: [[Int32]].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    try await PDClusterTests.conversation { try c.submit(promptTokens: $0, sampling: PDClusterTests.params(10)).1 }.map(\.tokens)
                }
            }
            var all: [[[Int32]]] = []
            for try await a in group { all.append(a) }
            return all
        }
        #expect(answers.allSatisfy { $0 == expected })
        #expect(c.nodes.allSatisfy { $0.transferStats.handoffs > 0 }, "every instance served some of the 16 requests")
        #expect(c.nodes.filter { $0.role == .prefill }.map(\.transferStats.handoffs).reduce(0, +) == 16)
        for _ in 0..<600 where !c.nodes.allSatisfy({ LocalNodes.idle($0.engine.stats) }) { try await Task.sleep(for: .milliseconds(5)) }
        #expect(c.nodes.allSatisfy { LocalNodes.idle($0.engine.stats) })
        await c.stop()
    }

    @Test("a front end over colocated instances spreads conversations and answers like one engine")
    func colocatedPeers() async throws {
        let expected = try await Self.expected()
        let n = try await LocalNodes.start([.colocated, .colocated], mode: .caching1)
        let answers = try await withThrowingTaskGroup(of: [[Int32]].self) { group in
            for _ in 0..<2 {
                group.addTask {
                    try await PDClusterTests.conversation { try n.front.submit(promptTokens: $0, sampling: PDClusterTests.params(10)).1 }.map(\.tokens)
                }
            }
            var all: [[[Int32]]] = []
            for try await a in group { all.append(a) }
            return all
        }
        #expect(answers == [expected, expected])
        #expect(n.nodes.allSatisfy { $0.engine.stats.hot.cached > 0 }, "both instances served requests")
        try await n.waitIdle()
        #expect(n.nodes.allSatisfy { LocalNodes.idle($0.engine.stats) })
        await n.stop()
    }

    @Test("seeded sampling continues exactly on the decode instance")
    func seededSampling() async throws {
        var p = PDClusterTests.params(24)
        p.temperature = 0.9
        p.topK = 40
        p.seed = 1234
        p.repetitionPenalty = 1.1
        p.presencePenalty = 0.3
        let prompt: [Int32] = (0..<37).map { Int32(5 + ($0 * 11) % 240) }
        let colocated = EngineService(model: PDClusterTests.base.sibling(threads: 1), memPool: try PDClusterTests.base.makeMemPool(hotBlocks: 64))
        defer { colocated.shutdown() }
        let want = try await PDClusterTests.collect(try colocated.submit(promptTokens: prompt, sampling: p).1).tokens
        let n = try await LocalNodes.start([.prefill, .decode], mode: .caching2)
        let got = try await PDClusterTests.collect(try n.front.submit(promptTokens: prompt, sampling: p).1).tokens
        #expect(got == want)
        #expect(got.count == 24)
        await n.stop()
    }

    @Test("transfer_with_insert over gRPC delivers every byte, whatever the blocks' order in memory")
    func bytesArriveIntact() async throws {
        let n = try await LocalNodes.start([.decode], mode: .caching2, blocks: [400])
        let pool = try PDClusterTests.base.makeMemPool(hotBlocks: 300)
        let bb = pool.blockBytes, bt = pool.blockTokens
        // 300 blocks, sent in a shuffled order: runs of adjacent blocks and lone ones.
        var random = SplitMix64(seed: 77)
        var blocks = pool.allocate(300)!
        for i in stride(from: blocks.count - 1, to: 0, by: -1) where random.next() % 3 == 0 {
            blocks.swapAt(i, Int(random.next() % UInt64(i + 1)))
        }
        for b in blocks {
            let p = pool.blockPointer(b).bindMemory(to: UInt64.self, capacity: bb / 8)
            for i in 0..<(bb / 8) { p[i] = random.next() }
        }
        let tokens = (0..<(blocks.count * bt)).map { _ in Int32(random.next() % 250) }
        let clients = PeerClients()
        let moved = try await RemoteTransfer.transferWithInsert(to: try clients.client(for: n.addresses[0]), tokens: tokens,
                                                                addresses: blocks.map { UInt(bitPattern: pool.blockPointer($0)) },
                                                                blockBytes: bb)
        #expect(moved == blocks.count)
        let sent = blocks.map { Data(bytes: pool.blockPointer($0), count: bb) }
        let received = try await n.decode.engine.perform { e -> [Data]? in
            let m = e.core.memPool.match(tokens)
            return m.blocks.map { Data(bytes: e.core.memPool.blockPointer($0), count: bb) }
        }
        #expect(received.count == sent.count)
        #expect(received == sent, "every block arrived byte for byte, in order")
        clients.shutdown()
        await n.stop()
    }

    @Test("malformed transfers and misdirected calls fail with a status and free what they reserved")
    func malformedPeers() async throws {
        let n = try await LocalNodes.start([.prefill, .decode], mode: .caching2)
        let bb = n.decode.engine.core.memPool.blockBytes, bt = n.decode.engine.core.memPool.blockTokens
        let raw = try RawPeer(n.addresses[1])
        let tokens = (0..<(3 * bt)).map { Int32(7 + $0 % 200) }

        // Wrong block layout, and more tokens than the blocks hold.
        #expect(await raw.transfer([RawPeer.transferHeader(tokens: tokens, blocks: 3, blockBytes: bb + 4)]).failure?.code == .failedPrecondition)
        #expect(await raw.transfer([RawPeer.transferHeader(tokens: tokens, blocks: 2, blockBytes: bb)]).failure?.code == .invalidArgument)
        #expect(await raw.transfer([RawPeer.chunk(first: 0, blocks: 1, blockBytes: bb)]).failure?.code == .invalidArgument, "header first")
        // A chunk out of order, a chunk of a wrong size, a sender that stops halfway.
        let header = RawPeer.transferHeader(tokens: tokens, blocks: 3, blockBytes: bb)
        #expect(await raw.transfer([header, RawPeer.chunk(first: 1, blocks: 1, blockBytes: bb)]).failure?.code == .invalidArgument)
        var odd = RawPeer.chunk(first: 0, blocks: 1, blockBytes: bb)
        odd.chunk.data.removeLast(3)
        #expect(await raw.transfer([header, odd]).failure?.code == .invalidArgument)
        #expect(await raw.transfer([header, RawPeer.chunk(first: 0, blocks: 1, blockBytes: bb)]).failure != nil)
        try await n.waitIdle()
        #expect(n.decode.engine.stats.hot.used == 0 && n.decode.engine.stats.hot.cached == 0, "nothing kept from failed transfers")

        // A whole transfer is indexed; the same one again moves nothing.
        let whole = [header, RawPeer.chunk(first: 0, blocks: 3, blockBytes: bb)]
        #expect(await raw.transfer(whole).success?.last?.done.movedBlocks == 3)
        #expect(await raw.transfer([header]).success?.last?.done.movedBlocks == 0)
        #expect(n.decode.engine.stats.hot.cached == 3 && n.decode.engine.stats.hot.used == 0)

        // Calls the instance's role does not take, and requests the engine refuses.
        #expect(await raw.generate(RawPeer.request([1, 2, 3], maxTokens: 2)).failure?.code == .failedPrecondition)
        let prefill = try RawPeer(n.addresses[0])
        #expect(await prefill.generate(RawPeer.request([1, 2, 3], maxTokens: 2)).failure?.code == .invalidArgument, "no decode_peer")
        let d = n.addresses[1].description
        #expect(await prefill.generate(RawPeer.request([], maxTokens: 2, decodePeer: d)).failure?.code == .invalidArgument)
        var bad = RawPeer.request([1, 2, 3], maxTokens: 2, decodePeer: d)
        bad.sampling.temperature = -1
        #expect(await prefill.generate(bad).failure?.code == .invalidArgument)
        let ok = await prefill.generate(RawPeer.request([1, 2, 3], maxTokens: 5, decodePeer: d))
        #expect(ok.success?.compactMap { $0.hasToken_p ? $0.token : nil }.count == 5)
        try await n.waitIdle()
        #expect(n.nodes.allSatisfy { LocalNodes.idle($0.engine.stats) })
        raw.clients.shutdown()
        prefill.clients.shutdown()
        await n.stop()
    }

    @Test("a decode instance that fails mid-transfer fails only that request; prefill keeps no block")
    func decodeFailsMidTransfer() async throws {
        let n = try await LocalNodes.start([.prefill, .decode], mode: .caching2)
        let failing = try await FailingDecode.start(blockBytes: n.decode.engine.core.memPool.blockBytes)
        let prefill = try RawPeer(n.addresses[0])
        let prompt: [Int32] = (0..<70).map { Int32(3 + $0 % 250) }
        let r = await prefill.generate(RawPeer.request(prompt, maxTokens: 8, decodePeer: failing.address.description))
        #expect(r.failure?.code == .unavailable)
        #expect(r.failure?.message.contains(failing.address.description) == true, "the error names the failed instance")
        #expect(failing.chunksSeen.withLock { $0 } >= 1, "it failed mid-transfer, after KV started moving")
        // The same prompt through a healthy decode instance still works (and hits prefill's cache).
        let ok = await prefill.generate(RawPeer.request(prompt, maxTokens: 8, decodePeer: n.addresses[1].description))
        #expect(ok.success?.compactMap { $0.hasToken_p ? $0.token : nil }.count == 8)
        try await n.waitIdle()
        #expect(n.nodes.allSatisfy { LocalNodes.idle($0.engine.stats) }, "no blocks held on either side")
        prefill.clients.shutdown()
        await failing.stop()
        await n.stop()
    }

    @Test("a decode instance short of blocks back-pressures prefill; everything completes")
    func backPressure() async throws {
        let n = try await LocalNodes.start([.prefill, .decode], mode: .caching2, blocks: [96, 8])
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<6 {
                let prompt = (0..<(60 + i * 5)).map { Int32(3 + ($0 * 13 + i * 7) % 250) }
                let stream = try n.front.submit(promptTokens: prompt, sampling: PDClusterTests.params(40)).1
                group.addTask { try await PDClusterTests.collect(stream).tokens.count }
            }
            var counts: [Int] = []
            for try await c in group { counts.append(c) }
            return counts
        }
        #expect(results == Array(repeating: 40, count: 6))
        #expect(n.decode.transferStats.deferredHandoffs > 0, "handoffs waited for decode blocks")
        try await n.waitIdle()
        #expect(n.nodes.allSatisfy { LocalNodes.idle($0.engine.stats) })
        await n.stop()
    }

    @Test("a client that disconnects mid-stream frees blocks on both instances")
    func cancelFreesBoth() async throws {
        let n = try await LocalNodes.start([.prefill, .decode], mode: .caching3)
        let stream = try n.front.submit(promptTokens: Array(5..<70), sampling: PDClusterTests.params(300)).1
        var count = 0
        for try await o in stream where o.token != nil {
            count += 1
            if count == 3 { break }
        }
        try await n.waitIdle()
        #expect(n.nodes.allSatisfy { LocalNodes.idle($0.engine.stats) })
        await n.stop()
    }
}

/// A decode instance that accepts a handoff, takes one KV chunk and then fails.
final class FailingDecode: Sendable {
    let blockBytes: Int
    let chunksSeen = Mutex(0)
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let transport: HTTP2ServerTransport.Posix
    let task: Task<Void, any Error>
    let address: PeerAddress

    private init(blockBytes: Int, transport: HTTP2ServerTransport.Posix, server: GRPCServer<HTTP2ServerTransport.Posix>,
                 task: Task<Void, any Error>, address: PeerAddress) {
        self.blockBytes = blockBytes
        self.transport = transport
        self.server = server
        self.task = task
        self.address = address
    }

    static func start(blockBytes: Int) async throws -> FailingDecode {
        var config = HTTP2ServerTransport.Posix.Config.defaults
        config.rpc.maxRequestPayloadSize = 64 << 20
        let transport = HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext, config: config)
        let handler = Handler()
        let server = GRPCServer(transport: transport, services: [handler])
        let task = Task { try await server.serve() }
        let bound = try await transport.listeningAddress.ipv4!
        let f = FailingDecode(blockBytes: blockBytes, transport: transport, server: server, task: task,
                              address: PeerAddress(host: bound.host, port: bound.port))
        handler.owner.withLock { $0 = f }
        return f
    }

    func stop() async {
        server.beginGracefulShutdown()
        _ = try? await task.value
    }

    /// The service (a separate object so the server can exist before its owner).
    final class Handler: Memserve_V1_Instance.SimpleServiceProtocol, Sendable {
        let owner = Mutex<FailingDecode?>(nil)

        func info(request: Memserve_V1_InfoRequest, context: ServerContext) async throws -> Memserve_V1_InstanceInfo {
            var i = Memserve_V1_InstanceInfo()
            i.role = "decode"
            i.pdMode = "caching-2"
            return i
        }

        func generate(request: Memserve_V1_GenerateRequest, response: RPCWriter<Memserve_V1_GenerateEvent>, context: ServerContext) async throws {
            throw RPCError(code: .unimplemented, message: "decode")
        }

        func handoff(request: RPCAsyncSequence<Memserve_V1_HandoffMessage, any Error>, response: RPCWriter<Memserve_V1_HandoffReply>,
                     context: ServerContext) async throws {
            var messages = request.makeAsyncIterator()
            _ = try await messages.next()
            var accepted = Memserve_V1_HandoffReply()
            accepted.accepted.haveBlocks = 0
            try await response.write(accepted)
            _ = try await messages.next()
            owner.withLock { $0?.chunksSeen.withLock { $0 += 1 } }
            throw RPCError(code: .unavailable, message: "decode instance lost")
        }

        func transferWithInsert(request: RPCAsyncSequence<Memserve_V1_TransferMessage, any Error>,
                                response: RPCWriter<Memserve_V1_TransferReply>, context: ServerContext) async throws {
            throw RPCError(code: .unimplemented, message: "decode")
        }

        func watchCache(request: Memserve_V1_WatchCacheRequest, response: RPCWriter<Memserve_V1_CacheUpdate>,
                        context: ServerContext) async throws {
            throw RPCError(code: .unimplemented, message: "decode")
        }

        func pushPrefix(request: Memserve_V1_PushPrefixRequest, context: ServerContext) async throws -> Memserve_V1_PushPrefixReply {
            throw RPCError(code: .unimplemented, message: "decode")
        }

        func spill(request: Memserve_V1_SpillRequest, context: ServerContext) async throws -> Memserve_V1_SpillReply {
            throw RPCError(code: .unimplemented, message: "decode")
        }
    }
}

extension Result {
    var failure: Failure? { if case let .failure(e) = self { e } else { nil } }
    var success: Success? { if case let .success(v) = self { v } else { nil } }
}
