import Router
import Cluster
import Engine
import Foundation
import GRPCCore
import Kernels
import PropertyBased
import Synchronization
import Testing
import Wire

/// Seeded hostile messages between instances, sent to live instances on loopback gRPC:
/// Generate with tokens outside the vocabulary, empty or over-long prompts and lying sampling
/// fields; Handoff and TransferWithInsert whose headers lie about tokens, blocks and sizes,
/// with chunks missing, misplaced, of the wrong size or after the end; PushPrefix to nowhere.
/// Every call must end with a status or an answer within the deadline, and afterwards the
/// instances hold no block, run nothing and still serve a normal request.
enum WireFuzz {
    enum Call: CustomStringConvertible {
        case generate(to: Int, Memserve_V1_GenerateRequest)
        case handoff(to: Int, [Memserve_V1_HandoffMessage])
        case transfer(to: Int, [Memserve_V1_TransferMessage])
        case push(to: Int, Memserve_V1_PushPrefixRequest)

        var description: String {
            switch self {
            case let .generate(to, r): "generate → \(to): \(r.promptTokens.count) tokens, max \(r.sampling.maxTokens), peer '\(r.decodePeer)'"
            case let .handoff(to, m): "handoff → \(to): \(m.count) messages" + (m.first.map { if case let .header(h)? = $0.part { ", \(h.tokens.count) tokens, prompt \(h.promptCount), \(h.blockCount) blocks of \(h.blockBytes)" } else { "" } } ?? "")
            case let .transfer(to, m): "transfer → \(to): \(m.count) messages" + (m.first.map { if case let .header(h)? = $0.part { ", \(h.tokens.count) tokens, \(h.blockCount) blocks of \(h.blockBytes)" } else { "" } } ?? "")
            case let .push(to, r): "push → \(to): \(r.tokens.count) tokens, \(r.blocks) blocks to '\(r.destination)'"
            }
        }
    }

    /// What the generator needs to know of the instances: addresses, vocabulary, block shape.
    struct World: Sendable {
        var addresses: [String]
        var vocabulary: Int
        var blockTokens: Int
        var blockBytes: Int
        var maxContext: Int
    }

    static func pick<T>(_ r: inout SplitMix64, _ options: [T]) -> T { options[Int(r.next() % UInt64(options.count))] }

    static func tokens(_ r: inout SplitMix64, _ w: World, count: Int? = nil) -> [Int32] {
        let n = count ?? pick(&r, [0, 1, 2, 5, 17, 33, 40, 64, w.maxContext - 1, w.maxContext, w.maxContext + 40])
        let lie = r.next() % 4 == 0
        return (0..<n).map { _ in
            lie && r.next() % 8 == 0 ? pick(&r, [-1, Int32.min, Int32.max, Int32(w.vocabulary), Int32(w.vocabulary + 1)])
                : Int32(r.next() % UInt64(w.vocabulary))
        }
    }

    static func sampling(_ r: inout SplitMix64, _ w: World) -> Memserve_V1_SamplingParams {
        var s = Memserve_V1_SamplingParams()
        let wild = r.next() % 3 == 0
        s.temperature = wild ? pick(&r, [0, 0.7, -1, .nan, .infinity, 1e30]) : pick(&r, [0, 0.8])
        s.topP = wild ? pick(&r, [1, 0, -0.5, 2, .nan]) : 1
        s.topK = wild ? pick(&r, [0, -5, 40, Int64.max, Int64.min]) : 0
        s.minP = wild ? pick(&r, [0, 0.1, -1, 5, .nan]) : 0
        s.repetitionPenalty = wild ? pick(&r, [1, 0, -3, .nan, 1e9]) : 1
        s.frequencyPenalty = wild ? pick(&r, [0, -2, 2, .nan, 1e9]) : 0
        s.presencePenalty = wild ? pick(&r, [0, -2, 2, .infinity]) : 0
        s.maxTokens = pick(&r, [0, -1, 1, 3, 8, 20, Int64.max, Int64.min, Int64(w.maxContext)])
        if r.next() % 2 == 0 { s.seed = r.next() }
        if r.next() % 3 == 0 {
            s.stopStrings = (0..<pick(&r, [1, 2, 100])).map { _ in pick(&r, ["", "a", "\u{0}", "🙂", String(repeating: "x", count: 10_000), "\n\n"]) }
        }
        if r.next() % 3 == 0 { s.stopTokens = tokens(&r, w, count: pick(&r, [1, 3, 50])) }
        s.ignoreEos = r.next() % 2 == 0
        return s
    }

    static func peer(_ r: inout SplitMix64, _ w: World) -> String {
        pick(&r, [w.addresses[1], w.addresses[1], w.addresses[0], "", "nonsense", "127.0.0.1:1", "[::1]:99999", "127.0.0.1"])
    }

    static func chunk(first: Int, blocks: Int, bytes: Int) -> Memserve_V1_KVChunk {
        var c = Memserve_V1_KVChunk()
        c.firstBlock = Int64(first)
        c.data = Data(repeating: 3, count: max(0, blocks * bytes))
        return c
    }

    /// Chunks for `blocks` blocks, sent right or wrong.
    static func chunks(_ r: inout SplitMix64, _ w: World, blocks: Int) -> [Memserve_V1_KVChunk] {
        let bb = w.blockBytes, n = max(0, min(blocks, 200))
        switch r.next() % 7 {
        case 0, 1: return n == 0 ? [] : [chunk(first: 0, blocks: n, bytes: bb)]
        case 2: return (0..<n).map { chunk(first: $0, blocks: 1, bytes: bb) }
        case 3: return n <= 1 ? [] : [chunk(first: 0, blocks: n - 1, bytes: bb)]                      // too few
        case 4: return [chunk(first: 0, blocks: n, bytes: bb), chunk(first: n, blocks: 1, bytes: bb)]  // after the end
        case 5: return [chunk(first: pick(&r, [1, -1, n, Int(Int32.max)]), blocks: 1, bytes: bb)]       // misplaced
        default:
            var c = chunk(first: 0, blocks: max(1, n), bytes: bb)
            c.data.removeLast(min(c.data.count, pick(&r, [1, 3, bb])))                                 // wrong size
            return [c]
        }
    }

    static func call(seed: UInt64, _ w: World) -> Call {
        var r = SplitMix64(seed: seed)
        let bt = w.blockTokens
        switch r.next() % 4 {
        case 0:
            var g = Memserve_V1_GenerateRequest()
            g.promptTokens = tokens(&r, w)
            g.sampling = sampling(&r, w)
            g.decodePeer = peer(&r, w)
            g.traceID = "fuzz-\(seed)"
            return .generate(to: r.next() % 4 == 0 ? 1 : 0, g)
        case 1:
            var h = Memserve_V1_HandoffHeader()
            h.tokens = tokens(&r, w)
            let computed = h.tokens.count - 1
            h.promptCount = r.next() % 3 == 0 ? pick(&r, [0, -1, Int64(computed + 1), Int64(computed + 5), Int64.max]) : Int64(max(1, computed))
            h.cachedTokens = r.next() % 4 == 0 ? pick(&r, [-1, Int64.max, Int64(computed + 3)]) : 0
            let blocks = (computed + bt - 1) / bt
            h.blockCount = r.next() % 3 == 0 ? pick(&r, [0, -1, Int64(blocks + 1), Int64(blocks - 1), Int64.max]) : Int64(blocks)
            h.blockBytes = r.next() % 5 == 0 ? pick(&r, [0, -1, Int64(w.blockBytes + 4), Int64.max]) : Int64(w.blockBytes)
            h.sampling = sampling(&r, w)
            h.rngState = (0..<pick(&r, [0, 4, 4, 3, 6])).map { _ in r.next() }
            h.decoderPending = Data((0..<pick(&r, [0, 0, 1, 3, 5, 2000])).map { _ in UInt8(truncatingIfNeeded: r.next()) })
            h.stopPending = pick(&r, ["", "", "ab", String(repeating: "y", count: 5000)])
            h.returnPeer = r.next() % 2 == 0 ? "" : peer(&r, w)
            h.traceID = "fuzz-\(seed)"
            var first = Memserve_V1_HandoffMessage()
            first.header = h
            var messages = r.next() % 10 == 0 ? [] : [first]
            for c in chunks(&r, w, blocks: blocks) {
                var m = Memserve_V1_HandoffMessage()
                m.chunk = c
                messages.append(m)
            }
            if r.next() % 10 == 0 { messages.append(first) }  // a second header
            return .handoff(to: r.next() % 5 == 0 ? 0 : 1, messages)
        case 2:
            var h = Memserve_V1_TransferHeader()
            h.tokens = tokens(&r, w, count: pick(&r, [0, 1, 16, 33, 48, 160]))
            let blocks = (h.tokens.count + bt - 1) / bt
            h.blockCount = r.next() % 3 == 0 ? pick(&r, [0, -1, Int64(blocks + 1), Int64(blocks - 1), Int64.max, 1 << 40]) : Int64(blocks)
            h.blockBytes = r.next() % 5 == 0 ? pick(&r, [0, -1, Int64(w.blockBytes - 1), Int64.min]) : Int64(w.blockBytes)
            var first = Memserve_V1_TransferMessage()
            first.header = h
            var messages = r.next() % 10 == 0 ? [] : [first]
            for c in chunks(&r, w, blocks: blocks) {
                var m = Memserve_V1_TransferMessage()
                m.chunk = c
                messages.append(m)
            }
            return .transfer(to: Int(r.next() % 2), messages)
        default:
            var p = Memserve_V1_PushPrefixRequest()
            p.tokens = tokens(&r, w, count: pick(&r, [0, 16, 40, 64]))
            p.blocks = pick(&r, [0, 1, 2, 3, -1, Int64.max, 1 << 40])
            p.destination = peer(&r, w)
            p.traceID = "fuzz-\(seed)"
            return .push(to: Int(r.next() % 2), p)
        }
    }
}

@Suite("Fuzzed gRPC messages between instances: a status, no crash, no hang, nothing leaked", .serialized)
struct GRPCFuzzTests {
    static let cases = ProcessInfo.processInfo.environment["MEMSERVE_FUZZ_GRPC_CASES"].flatMap(Int.init) ?? 300
    /// Per call: far above what any answer of the tiny model takes.
    static let deadline: Duration = .seconds(30)
    /// Seeds that once found a bug, run every time.
    static let regressionSeeds: [UInt64] = []

    /// Sends `call`; returns a word for the tally, or nil when it did not end within the deadline.
    static func send(_ call: WireFuzz.Call, _ clients: [PeerClients.Client]) async -> String? {
        await withTaskGroup(of: String?.self) { group in
            group.addTask {
                do {
                    try await Self.perform(call, clients)
                    return "ok"
                } catch let e as RPCError {
                    return "\(e.code)"
                } catch {
                    return "error \(type(of: error))"
                }
            }
            group.addTask {
                try? await Task.sleep(for: Self.deadline)
                return nil
            }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
    }

    static func perform(_ call: WireFuzz.Call, _ clients: [PeerClients.Client]) async throws {
        switch call {
        case let .generate(to, request):
            try await clients[to].generate(request: ClientRequest(message: request)) { response in
                var tokens = 0
                for try await e in response.messages where e.output.hasToken_p { tokens += 1 }
                if request.sampling.maxTokens > 0 {
                    #expect(tokens <= request.sampling.maxTokens, "\(call): \(tokens) tokens")
                }
            }
        case let .handoff(to, messages):
            let request = StreamingClientRequest<Memserve_V1_HandoffMessage> { writer in
                for m in messages { try await writer.write(m) }
            }
            try await clients[to].handoff(request: request, options: PeerClients.callOptions) { response in
                for try await _ in response.messages {}
            }
        case let .transfer(to, messages):
            let request = StreamingClientRequest<Memserve_V1_TransferMessage> { writer in
                for m in messages { try await writer.write(m) }
            }
            try await clients[to].transferWithInsert(request: request, options: PeerClients.callOptions) { response in
                for try await _ in response.messages {}
            }
        case let .push(to, request):
            _ = try await clients[to].pushPrefix(request)
        }
    }

    static func run(seeds: [UInt64]?, count: Int) async throws {
        let n = try await LocalNodes.start([.prefill, .decode], mode: .caching3)
        let pool = n.decode.engine.core.memPool
        let world = WireFuzz.World(addresses: n.addresses.map(\.description), vocabulary: PDClusterTests.base.transformer.configuration.vocabularySize,
                                   blockTokens: pool.blockTokens, blockBytes: pool.blockBytes, maxContext: PDClusterTests.base.transformer.maxContext)
        let peers = PeerClients()
        let clients = try n.addresses.map { try peers.client(for: $0) }
        let tally = Mutex<[String: Int]>([:])
        let check: @Sendable (UInt64) async -> Void = { seed in
            let call = WireFuzz.call(seed: seed, world)
            let outcome = await Self.send(call, clients)
            #expect(outcome != nil, "seed \(seed) (\(call)): no answer within \(Self.deadline)")
            tally.withLock { $0[outcome ?? "hang", default: 0] += 1 }
        }
        if let seeds {
            for seed in seeds { await check(seed) }
        } else {
            await propertyCheck(count: count, input: Generator(run: { rng in rng.next() })) { seed in await check(seed) }
        }
        print("fuzz grpc: " + tally.withLock { t in t.sorted { $0.value > $1.value }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") })

        // Nothing leaked or left held, and a normal request is still served.
        try await n.waitIdle()
        for node in n.nodes { Self.expectIdle(node, "after the fuzzed calls") }
        let out = try await PDClusterTests.collect(try n.front.submit(promptTokens: Array(5..<60), sampling: PDClusterTests.params(8)).1)
        #expect(out.tokens.count == 8)
        try await n.waitIdle()
        for node in n.nodes { Self.expectIdle(node, "after a normal request") }
        peers.shutdown()
        await n.stop()
    }

    static func expectIdle(_ node: InstanceNode, _ when: String) {
        let s = node.engine.stats
        #expect(LocalNodes.idle(s), "\(node.role) \(when): \(s)")
        #expect(s.hot.free + s.hot.cached == s.hot.capacity && s.hot.cached == s.hot.evictable, "\(node.role) \(when): blocks held or pinned: \(s.hot)")
    }

    @Test("seeded Generate, Handoff, TransferWithInsert and PushPrefix calls against a prefill and a decode instance")
    func seededCalls() async throws {
        try await Self.run(seeds: nil, count: Self.cases)
    }

    @Test("seeds that once found a bug", .enabled(if: !regressionSeeds.isEmpty))
    func regressions() async throws {
        try await Self.run(seeds: Self.regressionSeeds, count: 0)
    }
}
