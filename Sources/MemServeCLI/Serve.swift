import Router
import ArgumentParser
import Cluster
import Engine
import Foundation
import Logging
import MemPool
import Server

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the model over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, /v1/models, /health, /metrics).")

    @OptionGroup var modelArguments: ModelArguments

    @Option(help: "Address to listen on (default: loopback only; give 0.0.0.0 or an address, ideally with --api-key, to serve other hosts).")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0: any free port).")
    var port = 8000

    @Option(name: .customLong("served-model-name"), help: "Names clients may call the model by, comma-separated (the first is listed and returned in responses). Default: the model file's name.")
    var servedModelName: String?

    @Option(name: .customLong("max-running"), help: "Most requests decoding at once.")
    var maxRunning = 64

    @Flag(name: .customLong("no-prefix-caching"), help: "Do not reuse the KV cache of shared prompt prefixes across requests.")
    var noPrefixCaching = false

    @Option(help: "Colocated instances in this process behind the embedded router (the global scheduler); 1: one engine, no router.")
    var instances = 1

    @Option(help: "Prefill-only instances in this process (with --decode: disaggregated serving behind the embedded router).")
    var prefill = 0

    @Option(help: "Decode-only instances in this process.")
    var decode = 0

    @Option(name: .customLong("pd-mode"), help: "Caching with disaggregation: basic, caching-1, caching-2 or caching-3.")
    var pdMode: PDMode = .caching3

    @Option(help: "How instances of this process talk: in-process (direct calls, KV by memory copy) or grpc (loopback gRPC, as separate processes would).")
    var transport: DeploymentSpec.Transport = .inProcess

    @Option(help: "Serve through instances in other processes (`memserve instance`): comma-separated HOST:PORT list. Roles and PD mode are read from the instances; --model gives the tokenizer.")
    var peers: String?

    @OptionGroup var routerArguments: RouterArguments

    @OptionGroup var edgeArguments: EdgeArguments

    @OptionGroup var tlsArguments: TLSArguments

    var servedNames: [String] {
        (servedModelName ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    var spec: DeploymentSpec {
        var d = DeploymentSpec()
        d.colocated = prefill > 0 ? 0 : instances
        d.prefill = prefill
        d.decode = decode
        d.mode = pdMode
        d.transport = transport
        return d
    }

    func validate() throws {
        if servedModelName != nil && servedNames.isEmpty { throw ValidationError("--served-model-name needs at least one name") }
        if port < 0 || port > 65_535 { throw ValidationError("--port must be between 0 and 65535") }
        if maxRunning < 1 { throw ValidationError("--max-running must be positive") }
        if instances < 1 || instances > 64 { throw ValidationError("--instances must be between 1 and 64") }
        if instances > 1 && prefill > 0 { throw ValidationError("--instances (colocated) and --prefill/--decode exclude each other") }
        if let problem = spec.problem { throw ValidationError(problem) }
        if tlsArguments.certificate != nil && peers == nil && !(transport == .loopbackGRPC && spec.instanceCount > 1) {
            throw ValidationError("--tls-cert applies to gRPC links: give --peers, or --transport grpc with several instances")
        }
        if peers != nil {
            if prefill > 0 || instances > 1 { throw ValidationError("--peers excludes --instances and --prefill/--decode") }
            do {
                if try parsePeers(peers).isEmpty { throw ValidationError("--peers needs at least one HOST:PORT") }
            } catch let e as RemoteError { throw ValidationError("--peers: \(e)") }
        }
    }

    func run() async throws {
        MemServe.bootstrapLogging(verbose: modelArguments.verbose)
        // Before the engine exists: its metrics bind to the backend when created.
        let registry = PrometheusBootstrap.registry()
        let log = Logger(label: "memserve.serve")
        let model = try modelArguments.load()
        let backend: any InferenceBackend
        let tls = try tlsArguments.load()
        if peers != nil {
            let router = try await ClusterRouter.connect(model: model.served, peers: try parsePeers(peers), clients: PeerClients(tls: tls),
                                                         configuration: routerArguments.configuration)
            for m in router.memberList { log.info("peer \(m.description.name): \(m.description.role.rawValue), \(m.description.mode.rawValue), KV \(m.description.tokenCapacity) tokens") }
            backend = router
        } else {
            var spec = spec
            spec.threads = modelArguments.threads
            spec.hotBlocks = model.blocks(forMegabytes: modelArguments.kvMegabytes)
            spec.coldBlocks = modelArguments.kvColdMegabytes == 0 ? 0 : model.blocks(forMegabytes: modelArguments.kvColdMegabytes)
            spec.peerShare = modelArguments.peerShare
            spec.scheduler = modelArguments.scheduler(maxRunning: maxRunning, prefixCaching: !noPrefixCaching)
            spec.router = routerArguments.configuration
            spec.tls = tls
            do {
                backend = try await Deployment.start(model: model, spec: spec)
            } catch let e as MemPoolError {
                throw CLIError("cannot allocate the KV cache: \(e)")
            }
            if spec.instanceCount > 1 {
                log.info("\(spec.colocated > 0 ? "\(spec.colocated) colocated" : "\(spec.prefill) prefill + \(spec.decode) decode (\(spec.mode.rawValue))") instances, \(spec.transport.rawValue), behind the router (\(routerArguments.policy.rawValue))")
            }
        }
        let server = MemServeServer(engine: backend, configuration: edgeArguments.configuration(host: host, port: port, servedModelNames: servedNames),
                                    registry: registry)
        log.info("model \(model.name): context \(model.transformer.maxContext) tokens, KV cache \(backend.tokenCapacity) tokens per request, prefix caching \(noPrefixCaching ? "off" : "on")")
        let host = self.host
        try await server.run { port in
            // On stdout, so a script that started the server can read the address (logs go to stderr).
            Output.write("listening on http://\(host):\(port)\n")
        }
        log.info("stopped")
    }
}

extension PDMode: ExpressibleByArgument {}
extension DeploymentSpec.Transport: ExpressibleByArgument {}
