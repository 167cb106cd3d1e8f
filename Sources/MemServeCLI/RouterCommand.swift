import ArgumentParser
import Foundation
import Logging
import Router
import Server
import Serving
import ServiceLifecycle

/// The OpenAI-compatible front end over instances on other processes or hosts: the global
/// scheduler, with the same HTTP code as `serve`. It reads only the model file's tokenizer and
/// chat template; the weights stay with the instances.
struct RouterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "router",
        abstract: "Serve the OpenAI API over instances in other processes (`memserve instance`), routing by their prompt trees.")

    @Option(name: .long, help: "GGUF model file the instances serve (for its tokenizer and chat template; default: the installed SmolLM2, or $MEMSERVE_MODEL).")
    var model: String?

    @Option(help: "HOST:PORT for the HTTP API (default: loopback only).")
    var listen = "127.0.0.1:8000"

    @Option(help: "Instances to route over: comma-separated HOST:PORT list.")
    var peers: String?

    @Option(help: "etcd endpoint (http://HOST:PORT) to discover instances that register there (`memserve instance --etcd`).")
    var etcd: String?

    @Option(name: .customLong("etcd-prefix"), help: "Key prefix of the deployment in etcd.")
    var etcdPrefix = "/memserve"

    @Option(name: .customLong("served-model-name"), help: "Names clients may call the model by, comma-separated.")
    var servedModelName: String?

    @Option(name: .customLong("max-context"), help: "Longest sequence in tokens (capped by the model and the instances).")
    var maxContext: Int?

    @OptionGroup var routerArguments: RouterArguments

    @OptionGroup var edgeArguments: EdgeArguments

    @OptionGroup var tlsArguments: TLSArguments

    @Flag(name: .long, help: "Debug logging.")
    var verbose = false

    func validate() throws {
        do { _ = try PeerAddress(parsing: listen) } catch { throw ValidationError("--listen: \(error)") }
        do { _ = try parsePeers(peers) } catch { throw ValidationError("--peers: \(error)") }
        if peers == nil && etcd == nil { throw ValidationError("give --peers, --etcd or both") }
    }

    func run() async throws {
        MemServe.bootstrapLogging(verbose: verbose)
        let registry = PrometheusBootstrap.registry()
        let log = Logger(label: "memserve.router")
        let path = try ModelArguments.resolve(model)
        let served: ServedModel
        do { served = try ServedModel(path: path, maxContext: maxContext) } catch { throw CLIError("cannot read \(path): \(error)") }
        ModelArguments.logChatTemplate(served.chatTemplate)
        let clients = PeerClients(tls: try tlsArguments.load())
        let router = try await ClusterRouter.connect(model: served, peers: try parsePeers(peers), clients: clients,
                                                     configuration: routerArguments.configuration, requireComplete: etcd == nil)
        var services: [any Service] = []
        if let etcd { services.append(try MembershipFeed(router: router, endpoint: etcd, prefix: etcdPrefix)) }
        let address = try PeerAddress(parsing: listen)
        let names = (servedModelName ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let server = MemServeServer(engine: router, configuration: edgeArguments.configuration(host: address.host, port: address.port,
                                                                                             servedModelNames: names),
                                    registry: registry)
        log.info("router over \(router.memberList.count) instance(s)\(etcd.map { ", discovering through \($0)" } ?? ""), policy \(routerArguments.policy.rawValue)")
        let group = server.makeServiceGroup(handleSignals: true, extraServices: services) { port in
            Output.write("listening on http://\(address.host):\(port)\n")
        }
        try await group.run()
        log.info("stopped")
    }
}
