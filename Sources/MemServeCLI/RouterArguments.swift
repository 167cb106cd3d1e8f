import ArgumentParser
import Router
import Scheduler

/// How a router picks instances: shared by `serve` (embedded router) and `router`.
struct RouterArguments: ParsableArguments {
    @Option(help: "Routing policy: prompt-tree (longest cached prefix weighed against load), session, least-loaded or round-robin.")
    var policy: PolicyName = .promptTree

    @Option(name: .customLong("cache-ttl"), help: "Seconds after which the cached prefixes of an instance that stopped answering are forgotten.")
    var cacheTTL: Double = 10

    func validate() throws {
        if !(cacheTTL > 0 && cacheTTL <= 3600) { throw ValidationError("--cache-ttl must be between 0 and 3600 seconds") }
    }

    var configuration: ClusterRouter.Configuration {
        var c = ClusterRouter.Configuration()
        c.policy = policy
        c.ttl = .milliseconds(Int64(cacheTTL * 1000))
        return c
    }
}

extension PolicyName: ExpressibleByArgument {}

/// A comma-separated HOST:PORT list.
func parsePeers(_ text: String?) throws -> [PeerAddress] {
    try (text ?? "").split(separator: ",").map { try PeerAddress(parsing: $0.trimmingCharacters(in: .whitespaces)) }
}
