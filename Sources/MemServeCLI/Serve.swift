import Router
import ArgumentParser
import Cluster
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

    @Option(name: .customLong("served-model-name"), help: "Names clients may call the model by, comma-separated (the first is listed and returned in responses). Default: the model file's name.")
    var servedModelName: String?

    @Option(name: .customLong("max-running"), help: "Most requests decoding at once.")
    var maxRunning = 64

    @Flag(name: .customLong("no-prefix-caching"), help: "Do not reuse the KV cache of shared prompt prefixes across requests.")
    var noPrefixCaching = false

    @Option(help: "Prefill-only instances in this process (with --decode: disaggregated serving; 0: one colocated engine). One of each moves KV by memory copy; more talk over loopback gRPC.")
    var prefill = 0

    @Option(help: "Decode-only instances in this process.")
    var decode = 0

    @Option(name: .customLong("pd-mode"), help: "Caching with disaggregation: basic, caching-1, caching-2 or caching-3.")
    var pdMode: PDMode = .caching3

    @Option(help: "Serve through instances in other processes (`memserve instance`): comma-separated HOST:PORT list. Roles and PD mode are read from the instances; --model gives the tokenizer.")
    var peers: String?

    var peerAddresses: [PeerAddress] {
        get throws { try (peers ?? "").split(separator: ",").map { try PeerAddress(parsing: $0.trimmingCharacters(in: .whitespaces)) } }
    }

    var servedNames: [String] {
        (servedModelName ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func validate() throws {
        if servedModelName != nil && servedNames.isEmpty { throw ValidationError("--served-model-name needs at least one name") }
        if port < 0 || port > 65_535 { throw ValidationError("--port must be between 0 and 65535") }
        if maxRunning < 1 { throw ValidationError("--max-running must be positive") }
        if (prefill == 0) != (decode == 0) { throw ValidationError("--prefill and --decode go together") }
        if prefill < 0 || decode < 0 { throw ValidationError("--prefill and --decode must not be negative") }
        if peers != nil {
            if prefill > 0 { throw ValidationError("--peers and --prefill/--decode exclude each other") }
            do {
                if try peerAddresses.isEmpty { throw ValidationError("--peers needs at least one HOST:PORT") }
            } catch let e as RemoteError { throw ValidationError("--peers: \(e)") }
        }
    }

    func run() async throws {
        MemServe.bootstrapLogging(verbose: modelArguments.verbose)
        // Before the engine exists: its metrics bind to the backend when created.
        let registry = PrometheusBootstrap.registry()
        let log = Logger(label: "memserve.serve")
        let model = try modelArguments.load()
        let scheduler = modelArguments.scheduler(maxRunning: maxRunning, prefixCaching: !noPrefixCaching)
        let blocks = model.blocks(forMegabytes: modelArguments.kvMegabytes)
        let backend: any InferenceBackend
        if peers != nil {
            let remote = try await RemoteCluster(model: model.served, peers: try peerAddresses)
            for p in remote.peerList { log.info("peer \(p.address): \(p.role.rawValue), \(p.mode.rawValue), KV \(p.tokenCapacity) tokens") }
            backend = remote
        } else if prefill + decode > 2 {
            // More than one instance per role: the instances talk over loopback gRPC, as
            // separate processes would; each gets an equal share of threads and KV memory.
            let n = prefill + decode
            let threads = max(1, modelArguments.threads / n)
            let roles = Array(repeating: InstanceRole.prefill, count: prefill) + Array(repeating: .decode, count: decode)
            backend = try await LoopbackCluster.start(model: model, roles: roles, mode: pdMode, blocks: max(1, blocks / n),
                                                      threads: threads, configuration: scheduler)
            log.info("disaggregated: \(prefill) prefill + \(decode) decode instances over loopback gRPC, \(pdMode.rawValue), \(threads) threads each")
        } else if prefill == 1 && decode == 1 {
            // Each instance gets its own threads and half the KV memory; weights are shared.
            let threads = max(1, modelArguments.threads / 2)
            let p = model.sibling(threads: threads), d = model.sibling(threads: max(1, modelArguments.threads - threads))
            backend = PDCluster(prefillModel: p, prefillPool: try p.makeMemPool(hotBlocks: max(1, blocks / 2)),
                                decodeModel: d, decodePool: try d.makeMemPool(hotBlocks: max(1, blocks / 2)),
                                mode: pdMode, configuration: scheduler)
            log.info("disaggregated: 1 prefill + 1 decode instance, \(pdMode.rawValue), \(threads) threads each")
        } else {
            backend = EngineService(model: model, memPool: try modelArguments.makeMemPool(for: model), configuration: scheduler)
        }
        let server = MemServeServer(engine: backend, configuration: ServerConfiguration(host: host, port: port, servedModelNames: servedNames), registry: registry)
        log.info("model \(model.name): context \(model.transformer.maxContext) tokens, KV cache \(backend.tokenCapacity) tokens per request, prefix caching \(scheduler.prefixCaching ? "on" : "off")")
        let host = self.host
        try await server.run { port in
            // On stdout, so a script that started the server can read the address (logs go to stderr).
            Output.write("listening on http://\(host):\(port)\n")
        }
        log.info("stopped")
    }
}

extension PDMode: ExpressibleByArgument {}
