import Engine
import Foundation
import GGUF
import Model
import Server

// Copied in part from Tests/ServerTests/TestSupport.swift: a real memserve server over a tiny
// random-weight model, on a free loopback port.

/// A server over a tiny random-weight model (ChatML tokens, byte-level vocabulary).
struct Harness {
    let engine: EngineService
    let server: MemServeServer

    static func make(contextLength: Int, maxContext: Int, blocks: Int, prefixCaching: Bool = true) throws -> Harness {
        // Before the engine: its metrics bind to the backend when it is created.
        let registry = PrometheusBootstrap.registry()
        var options = ModelOptions()
        options.maxBatchTokens = 256
        options.maxContext = maxContext
        options.maxLogitRows = 16
        var shape = SyntheticModel.Shape()
        shape.contextLength = contextLength
        let model = try LoadedModel(file: GGUFFile(bytes: SyntheticModel.gguf(shape)), name: "synthetic", options: options, threads: 1)
        var scheduler = SchedulerConfiguration()
        scheduler.prefixCaching = prefixCaching
        scheduler.tokenBudget = 256
        let engine = EngineService(model: model, memPool: try model.makeMemPool(hotBlocks: blocks), configuration: scheduler)
        let server = MemServeServer(engine: engine, configuration: ServerConfiguration(host: "127.0.0.1", port: 0), registry: registry)
        return Harness(engine: engine, server: server)
    }

    /// Runs the whole service group (app and engine) on a free loopback port.
    func withLiveServer<T: Sendable>(_ body: @Sendable (Int) async throws -> T) async throws -> T {
        let (ports, portSink) = AsyncStream<Int>.makeStream()
        let group = server.makeServiceGroup(handleSignals: false) { port in portSink.yield(port) }
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var it = ports.makeAsyncIterator()
            guard let port = await it.next() else { throw TestFailure("server did not start") }
            do {
                let value = try await body(port)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return value
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
