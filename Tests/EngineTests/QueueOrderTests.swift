import GGUF
import MemPool
import Model
import Testing
@testable import Engine

/// The waiting queue's cache-aware order: cached requests go ahead of uncached prefills, and
/// the aging bound keeps an uncached request from waiting forever.
@Suite("Cache-aware admission order", .serialized)
struct QueueOrderTests {
    /// Its own model: a model's forward-pass scratch serves one engine thread at a time, and
    /// other suites run in parallel with this one.
    static let loaded: LoadedModel = {
        var options = ModelOptions()
        options.maxBatchTokens = 64
        options.maxContext = 256
        options.maxLogitRows = 16
        return try! LoadedModel(file: GGUFFile(bytes: SyntheticModel.gguf()), name: "synthetic", options: options, threads: 1)
    }()

    /// An engine that admits one request per step (budget = one prompt), so admission order is
    /// the order in which requests produce their first token.
    static func engine(order: QueueOrder, agingBound: Int = 8) -> EngineCore {
        var config = SchedulerConfiguration()
        config.tokenBudget = 64
        config.maxRunning = 1
        config.queueOrder = order
        config.agingBound = agingBound
        let m = Self.loaded
        return EngineCore(model: m.transformer, tokenizer: m.tokenizer, memPool: try! m.makeMemPool(hotBlocks: 64),
                          configuration: config)
    }

    static func request(_ id: RequestID, prompt: [Int32]) -> GenerationRequest {
        var p = SamplingParameters.greedy
        p.maxTokens = 1
        p.ignoreEOS = true
        return GenerationRequest(id: id, promptTokens: prompt, sampling: p)
    }

    static func prompt(_ seed: Int32, _ n: Int) -> [Int32] { (0..<Int32(n)).map { 3 + ($0 * 7 + seed * 13) % 240 } }

    /// Ids in the order they finished (each generates one token).
    static func finishOrder(_ e: EngineCore) throws -> [RequestID] {
        var order: [RequestID] = []
        var steps = 0
        while e.hasWork && steps < 1000 {
            for out in try e.step() where out.finishReason != nil { order.append(out.id) }
            steps += 1
        }
        return order
    }

    @Test("a request whose prompt is cached overtakes earlier uncached ones; FIFO does not")
    func cachedFirst() throws {
        let shared = Self.prompt(1, 48)
        for order in QueueOrder.allCases {
            let e = Self.engine(order: order)
            try e.add(Self.request(1, prompt: shared + [5]))
            _ = try Self.finishOrder(e)  // caches `shared`
            try e.add(Self.request(2, prompt: Self.prompt(2, 40)))
            try e.add(Self.request(3, prompt: Self.prompt(3, 40)))
            try e.add(Self.request(4, prompt: shared + [9, 10]))
            let got = try Self.finishOrder(e)
            #expect(got == (order == .fifo ? [2, 3, 4] : [4, 2, 3]), "\(order)")
        }
    }

    @Test("the aging bound: an uncached request waits behind at most agingBound later arrivals")
    func agingBound() throws {
        let shared = Self.prompt(1, 48)
        let e = Self.engine(order: .cacheAware, agingBound: 2)
        try e.add(Self.request(1, prompt: shared + [5]))
        _ = try Self.finishOrder(e)
        try e.add(Self.request(10, prompt: Self.prompt(4, 40)))
        for id in RequestID(20)..<26 { try e.add(Self.request(id, prompt: shared + [Int32(id)])) }
        let got = try Self.finishOrder(e)
        let position = try #require(got.firstIndex(of: 10))
        #expect(position == 2, "order \(got)")
    }
}
