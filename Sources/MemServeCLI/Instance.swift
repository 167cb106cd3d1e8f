import Router
import ArgumentParser
import Cluster
import Engine
import Foundation
import Logging
import ServiceLifecycle

/// One instance in its own process, reachable over gRPC: `memserve serve --peers` (or the
/// router) sends it requests; instances move KV between each other directly.
struct Instance: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one prefill, decode or colocated instance as a process, served over gRPC.")

    @OptionGroup var modelArguments: ModelArguments

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

    func validate() throws {
        do { _ = try PeerAddress(parsing: listen) } catch { throw ValidationError("--listen: \(error)") }
        if let advertise {
            do { _ = try PeerAddress(parsing: advertise) } catch { throw ValidationError("--advertise: \(error)") }
        }
        if maxRunning < 1 { throw ValidationError("--max-running must be positive") }
    }

    func run() async throws {
        MemServe.bootstrapLogging(verbose: modelArguments.verbose)
        let log = Logger(label: "memserve.instance")
        let model = try modelArguments.load()
        let scheduler = modelArguments.scheduler(maxRunning: maxRunning, prefixCaching: !noPrefixCaching)
        let address = try PeerAddress(parsing: listen)
        let node = InstanceNode(model: model, memPool: try modelArguments.makeMemPool(for: model), role: role, mode: pdMode,
                                listen: address, advertise: advertise, configuration: scheduler)
        if role == .prefill && pdMode == .caching3 && advertise == nil && ["0.0.0.0", "::"].contains(address.host) {
            log.warning("listening on all interfaces without --advertise: decode instances on other hosts cannot return KV (PD-Caching-3) to \(listen)")
        }
        let group = ServiceGroup(configuration: .init(services: [node], gracefulShutdownSignals: [.sigterm, .sigint], logger: log))
        let role = role, mode = pdMode
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                let address = try await node.listeningAddress
                log.info("\(role.rawValue) instance, \(mode.rawValue), model \(model.name), KV \(node.engine.tokenCapacity) tokens")
                // On stdout, so a script that started the instance can read the address.
                Output.write("listening on grpc://\(address)\n")
            }
            try await tasks.waitForAll()
        }
        log.info("stopped")
    }
}

extension InstanceRole: ExpressibleByArgument {}
