import Bench
import Cluster
import Engine
import Foundation
import GGUF
import Model
import Router
import Server
import Testing

/// The soak test's short version (`memserve bench soak` is the long one): a few hundred mixed
/// requests through the HTTP front end, a third of the clients hanging up mid-answer, then no
/// request lost, pools idle and `/metrics` equal to the pools.
@Suite("Soak: mixed load with disconnects leaves nothing behind", .serialized)
struct SoakTests {
    static let model: LoadedModel = {
        // Before any engine: their metrics bind to the registry when created.
        _ = PrometheusBootstrap.registry()
        var options = ModelOptions()
        options.maxBatchTokens = 64
        options.maxContext = 1024
        options.maxLogitRows = 16
        var shape = SyntheticModel.Shape()
        shape.contextLength = 1024
        return try! LoadedModel(file: GGUFFile(bytes: SyntheticModel.gguf(shape)), name: "synthetic", options: options, threads: 1)
    }()

    static func configuration(requests: Int, seed: UInt64) -> SoakBench.Configuration {
        var c = SoakBench.Configuration()
        c.requests = requests
        c.concurrency = 8
        c.seed = seed
        c.warmup = requests / 4
        c.maxTokens = 16
        return c
    }

    static func check(_ r: SoakBench.Report) {
        #expect(r.lost == 0, "lost: \(r.lostReasons)")
        #expect(r.completed + r.disconnected + r.refused == r.requests)
        #expect(r.completed > r.requests / 3 && r.disconnected > r.requests / 8, "the load mixes whole answers and hang-ups: \(r)")
        #expect(r.streamed > 0 && r.streamed < r.completed, "streamed and not")
        #expect(r.blocksLeaked == 0 && r.running == 0 && r.waiting == 0 && r.pendingHandoffs == 0, "\(r)")
        #expect(r.hot.free + r.hot.cached == r.hot.capacity && r.hot.cached == r.hot.evictable, "no block held or pinned: \(r.hot)")
        #expect(r.metricsDisagreements.isEmpty, "\(r.metricsDisagreements)")
        #expect(r.clean)
    }

    @Test("one engine in process")
    func colocated() async throws {
        let engine = EngineService(model: Self.model.sibling(threads: 1), memPool: try Self.model.makeMemPool(hotBlocks: 256))
        let r = try await SoakBench.runInProcess(backend: engine, configuration: Self.configuration(requests: 300, seed: 11))
        Self.check(r)
    }

    @Test("prefill and decode instances over loopback gRPC (PD-Caching-3)")
    func disaggregated() async throws {
        var spec = DeploymentSpec()
        spec.colocated = 0
        spec.prefill = 1
        spec.decode = 1
        spec.mode = .caching3
        spec.transport = .loopbackGRPC
        spec.threads = 2
        spec.hotBlocks = 512
        let backend = try await Deployment.start(model: Self.model, spec: spec)
        let r = try await SoakBench.runInProcess(backend: backend, configuration: Self.configuration(requests: 200, seed: 12))
        Self.check(r)
    }
}
