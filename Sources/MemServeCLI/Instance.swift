import Router
import ArgumentParser
import Cluster
import Engine
import Foundation
import Logging
import Membership
import ServiceLifecycle

/// One instance in its own process, reachable over gRPC: `memserve serve --peers` (or the
/// router) sends it requests; instances move KV between each other directly.
struct Instance: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one prefill, decode or colocated instance as a process, served over gRPC.")

    @OptionGroup var modelArguments: ModelArguments

    @OptionGroup var tlsArguments: TLSArguments

    @Option(help: "What this instance does: prefill, decode or colocated.")
    var role: InstanceRole

    @Option(help: "HOST:PORT to listen on for gRPC (port 0: any free port; the address is printed).")
    var listen = "127.0.0.1:0"

    @Option(help: "HOST:PORT other instances reach this one at, if not the listening address.")
    var advertise: String?

    @Option(name: .customLong("pd-mode"), help: "Caching with disaggregation: basic, caching-1, caching-2 or caching-3 (the same on every instance).")
    var pdMode: PDMode = .caching3

    @Option(name: .customLong("max-running"), help: "Most requests decoding at once.")
    var maxRunning = 64

    @Flag(name: .customLong("no-prefix-caching"), help: "Do not reuse the KV cache of shared prompt prefixes.")
    var noPrefixCaching = false

    @Option(help: "etcd endpoint (http://HOST:PORT) to register with, so routers (`memserve router --etcd`) find this instance; it leaves on shutdown, or when its lease expires if it dies.")
    var etcd: String?

    @Option(name: .customLong("etcd-prefix"), help: "Key prefix of the deployment in etcd.")
    var etcdPrefix = "/memserve"

    @Option(name: .customLong("drain-timeout"), help: "Seconds to wait on SIGTERM while routers hand the prefixes only this instance caches to peers.")
    var drainTimeout = 10

    @Option(name: .customLong("etcd-ttl"), help: "Seconds of the etcd lease: how long a dead instance stays listed.")
    var etcdTTL = 5

    func validate() throws {
        do { _ = try PeerAddress(parsing: listen) } catch { throw ValidationError("--listen: \(error)") }
        if let advertise {
            do { _ = try PeerAddress(parsing: advertise) } catch { throw ValidationError("--advertise: \(error)") }
        }
        if maxRunning < 1 { throw ValidationError("--max-running must be positive") }
        if etcdTTL < 2 || etcdTTL > 600 { throw ValidationError("--etcd-ttl must be between 2 and 600 seconds") }
        if drainTimeout < 0 || drainTimeout > 600 { throw ValidationError("--drain-timeout must be between 0 and 600 seconds") }
    }

    func run() async throws {
        MemServe.bootstrapLogging(verbose: modelArguments.verbose)
        let log = Logger(label: "memserve.instance")
        let model = try modelArguments.load()
        let scheduler = modelArguments.scheduler(maxRunning: maxRunning, prefixCaching: !noPrefixCaching)
        let address = try PeerAddress(parsing: listen)
        let tls = try tlsArguments.load()
        let node = InstanceNode(model: model, memPool: try modelArguments.makeMemPool(for: model, amongPeers: true), role: role, mode: pdMode,
                                listen: address, advertise: advertise, configuration: scheduler, tls: tls)
        if role == .prefill && pdMode == .caching3 && advertise == nil && ["0.0.0.0", "::"].contains(address.host) {
            log.warning("listening on all interfaces without --advertise: decode instances on other hosts cannot return KV (PD-Caching-3) to \(listen)")
        }
        let announce = Announce(node: node, etcd: etcd.map { ($0, etcdPrefix, etcdTTL) }, model: model.name, log: log)
        // Shut down in reverse: hand the prefixes only this instance caches to peers (while
        // routers still follow it), leave etcd, then stop the instance.
        let group = ServiceGroup(configuration: .init(services: [
            .init(service: node),
            .init(service: announce, successTerminationBehavior: .ignore),
            .init(service: Handover(node: node, timeout: .seconds(drainTimeout))),
        ], gracefulShutdownSignals: [.sigterm, .sigint], logger: log))
        try await group.run()
        log.info("stopped")
    }
}

extension InstanceRole: ExpressibleByArgument {}

/// On graceful shutdown, before the instance leaves etcd and stops: the elastic pool's
/// handover of what only this instance caches.
private struct Handover: Service {
    let node: InstanceNode
    let timeout: Duration

    func run() async throws {
        try? await gracefulShutdown()
        await node.drain(timeout: timeout)
    }
}

/// Once the instance listens: measures its costs, prints its address, then registers it in
/// etcd (if asked) until shutdown.
private struct Announce: Service {
    let node: InstanceNode
    let etcd: (endpoint: String, prefix: String, ttl: Int)?
    let model: String
    let log: Logger

    func run() async throws {
        let address = try await node.listeningAddress
        // Before anyone learns of it: what routers' cost models read from Info.
        await node.measureCosts()
        log.info("\(node.role.rawValue) instance, \(node.mode.rawValue), model \(model), KV \(node.engine.tokenCapacity) tokens")
        // On stdout, so a script that started the instance can read the address.
        Output.write("listening on grpc://\(address)\(node.tls == nil ? "" : " (mutual TLS)")\n")
        guard let etcd else { return }
        let record = MemberRecord(address: node.name, role: node.role.rawValue, pdMode: node.mode.rawValue, model: model)
        let registration = MembershipRegistration(client: EtcdClient(endpoint: etcd.endpoint), prefix: etcd.prefix, record: record,
                                                  ttlSeconds: etcd.ttl)
        log.info("registering as \(node.name) in etcd at \(etcd.endpoint)")
        try await registration.run()
    }
}
