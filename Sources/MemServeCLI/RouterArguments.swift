import ArgumentParser
import Router
import Scheduler

/// How a router picks instances: shared by `serve` (embedded router) and `router`.
struct RouterArguments: ParsableArguments {
    @Option(help: "Routing policy: prompt-tree (longest cached prefix weighed against load), session, least-loaded or round-robin.")
    var policy: PolicyName = .promptTree

    @Option(name: .customLong("cache-ttl"), help: "Seconds after which the cached prefixes of an instance that stopped answering are forgotten.")
    var cacheTTL: Double = 10

    @Option(name: .customLong("balance-abs-threshold"), help: "prompt-tree: requests by which the busiest instance must exceed the idlest before the least loaded one is taken regardless of cache.")
    var balanceAbsoluteThreshold = PromptTreePolicy.Configuration().balanceAbsoluteThreshold

    @Option(name: .customLong("balance-rel-threshold"), help: "prompt-tree: ratio by which the busiest instance must exceed the idlest, too, for that fallback.")
    var balanceRelativeThreshold = PromptTreePolicy.Configuration().balanceRelativeThreshold

    func validate() throws {
        if balanceAbsoluteThreshold < 0 { throw ValidationError("--balance-abs-threshold must not be negative") }
        if !(balanceRelativeThreshold >= 1 && balanceRelativeThreshold < 1e6) { throw ValidationError("--balance-rel-threshold must be at least 1") }
        if !(cacheTTL > 0 && cacheTTL <= 3600) { throw ValidationError("--cache-ttl must be between 0 and 3600 seconds") }
    }

    var configuration: ClusterRouter.Configuration {
        var c = ClusterRouter.Configuration()
        c.policy = policy
        c.ttl = .milliseconds(Int64(cacheTTL * 1000))
        c.promptTree.balanceAbsoluteThreshold = balanceAbsoluteThreshold
        c.promptTree.balanceRelativeThreshold = balanceRelativeThreshold
        return c
    }
}

extension PolicyName: ExpressibleByArgument {}

/// A comma-separated HOST:PORT list.
func parsePeers(_ text: String?) throws -> [PeerAddress] {
    try (text ?? "").split(separator: ",").map { try PeerAddress(parsing: $0.trimmingCharacters(in: .whitespaces)) }
}
