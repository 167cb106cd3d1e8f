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

    @Option(name: .customLong("eviction-weight"), help: "prompt-tree: how much a cached block the request would evict weighs, in tokens prefilled again per evicted token (0 ignores evictions).")
    var evictionWeight = PromptTreePolicy.Configuration().evictionWeight

    @Option(name: .customLong("prefill-weight"), help: "prompt-tree: weight of a request's own prefill against the queue ahead of it (above 1, recomputing a prefix another instance holds counts as work others wait for).")
    var prefillWeight = PromptTreePolicy.Configuration().prefillWeight

    func validate() throws {
        if !(prefillWeight >= 0 && prefillWeight <= 100) { throw ValidationError("--prefill-weight must be between 0 and 100") }
        if !(evictionWeight >= 0 && evictionWeight <= 100) { throw ValidationError("--eviction-weight must be between 0 and 100") }
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
        c.promptTree.evictionWeight = evictionWeight
        c.promptTree.prefillWeight = prefillWeight
        return c
    }
}

extension PolicyName: ExpressibleByArgument {}

/// A comma-separated HOST:PORT list.
func parsePeers(_ text: String?) throws -> [PeerAddress] {
    try (text ?? "").split(separator: ",").map { try PeerAddress(parsing: $0.trimmingCharacters(in: .whitespaces)) }
}
