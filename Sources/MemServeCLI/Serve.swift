import ArgumentParser
import Engine
import Foundation
import Logging
import Server

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the model over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, /v1/models, /health, /metrics).")

    @OptionGroup var modelArguments: ModelArguments

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0: any free port).")
    var port = 8000

    @Option(name: .customLong("max-running"), help: "Most requests decoding at once.")
    var maxRunning = 64

    @Flag(name: .customLong("no-prefix-caching"), help: "Do not reuse the KV cache of shared prompt prefixes across requests.")
    var noPrefixCaching = false

    func validate() throws {
        if port < 0 || port > 65_535 { throw ValidationError("--port must be between 0 and 65535") }
        if maxRunning < 1 { throw ValidationError("--max-running must be positive") }
    }

    func run() async throws {
        MemServe.bootstrapLogging(verbose: modelArguments.verbose)
        // Before the engine exists: its metrics bind to the backend when created.
        let registry = PrometheusBootstrap.registry()
        let log = Logger(label: "memserve.serve")
        let model = try modelArguments.load()
        var scheduler = SchedulerConfiguration()
        scheduler.tokenBudget = modelArguments.maxBatchTokens
        scheduler.maxRunning = maxRunning
        scheduler.prefixCaching = !noPrefixCaching
        let blocks = model.blocks(forMegabytes: modelArguments.kvMegabytes)
        let engine = EngineService(model: model, memPool: try model.makeMemPool(hotBlocks: blocks), configuration: scheduler)
        let server = MemServeServer(engine: engine, configuration: ServerConfiguration(host: host, port: port), registry: registry)
        let cacheTokens = blocks * model.transformer.kvLayout.blockTokens
        log.info("model \(model.name): context \(model.transformer.maxContext) tokens, KV cache \(blocks) blocks (\(cacheTokens) tokens), prefix caching \(scheduler.prefixCaching ? "on" : "off")")
        let host = self.host
        try await server.run { port in
            // On stdout, so a script that started the server can read the address (logs go to stderr).
            Output.write("listening on http://\(host):\(port)\n")
        }
        log.info("stopped")
    }
}
