import ArgumentParser
import Bench
import Foundation
import Scheduler

struct RoutingBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "routing",
        abstract: "Multi-turn chats with shared documents over several colocated instances, once per routing policy, beside one instance with all their memory (hit rate, TTFT, JCT).")

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var output: BenchOutputArguments
    @OptionGroup var chats: ChatWorkloadArguments
    @Option(name: .customLong("policies"), help: "Policies to compare (repeatable; default: all; --policy is ignored here).") var policies: [PolicyName] = []
    @OptionGroup var router: RouterArguments

    func validate() throws { try chats.check() }

    func run() async throws {
        MemServe.bootstrapLogging(verbose: modelArguments.verbose)
        let model = try modelArguments.load()
        var w = RoutingBench.Workload()
        let kvPerInstance = chats.apply(to: &w, defaults: .init(conversations: 24, groups: 4, documentTokens: 384, rate: 4, kvPerInstance: 64))
        let r = try await RoutingBench.run(model: model, workload: w, kvMegabytes: kvPerInstance, router: router.configuration,
                                           policies: policies.isEmpty ? PolicyName.allCases : policies) {
            FileHandle.standardError.write(Data("bench: \($0)\n".utf8))
        }
        if output.json { try printJSON(r); return }
        Output.write("\(r.instances) instances, \(r.conversations) conversations (\(r.requests) requests), \(r.arrival_rate_per_s)/s\n")
        Output.write("policy          hit rate   TTFT avg/p99 ms     JCT avg/p99 ms      evicted\n")
        func row(_ name: String, _ p: RoutingBench.PolicyResult) {
            Output.write(name.padding(toLength: 15, withPad: " ", startingAt: 0) +
                String(format: " %6.1f%%  %7.1f / %-8.1f %7.1f / %-8.1f %7d\n", 100 * p.hit_rate, p.ttft_avg_ms, p.ttft_p99_ms,
                       p.jct_avg_ms, p.jct_p99_ms, p.evicted_blocks) + (p.empty > 0 ? "  (\(p.empty) ended without a token)\n" : ""))
        }
        for name in r.policies.keys.sorted() { row(name, r.policies[name]!) }
        row("single", r.single_instance)
        for (k, v) in r.prompt_tree_p99_ttft_improvement.sorted(by: { $0.key < $1.key }) {
            Output.write(String(format: "prompt-tree P99 TTFT vs %@: %.0f%% better\n", k, 100 * v))
        }
    }
}

/// The workload of the multi-instance chat benchmarks (`bench routing`, `bench elastic`); each
/// command has its own defaults.
struct ChatWorkloadArguments: ParsableArguments {
    struct Defaults {
        var conversations: Int, groups: Int, documentTokens: Int, rate: Double, kvPerInstance: Int
    }

    @Option var instances = 4
    @Option(help: "Conversations (default: the benchmark's).") var conversations: Int?
    @Option(help: "Groups of conversations sharing a document (default: the benchmark's).") var groups: Int?
    @Option(name: .customLong("document-tokens"), help: "Tokens of each group's shared system prompt or document.") var documentTokens: Int?
    @Option(name: .customLong("rate"), help: "Conversations arriving per second (Poisson).") var rate: Double?
    @Option(name: .customLong("kv-mb-per-instance"), help: "Hot KV memory of each instance, MiB (the single instance gets all of it).")
    var kvPerInstance: Int?
    @Option(help: "Seed of the workload.") var seed: UInt64 = 11

    func check() throws {
        if instances < 2 || instances > 16 { throw ValidationError("--instances must be between 2 and 16") }
        if [conversations, groups, documentTokens, kvPerInstance].contains(where: { ($0 ?? 1) < 1 }) {
            throw ValidationError("counts must be positive")
        }
        if let rate, !(rate > 0) { throw ValidationError("--rate must be positive") }
    }

    /// Fills in the workload; returns the KV MiB per instance.
    func apply(to w: inout RoutingBench.Workload, defaults d: Defaults) -> Int {
        w.instances = instances
        w.conversations = conversations ?? d.conversations
        w.groups = groups ?? d.groups
        w.documentTokens = documentTokens ?? d.documentTokens
        w.arrivalRate = rate ?? d.rate
        w.seed = seed
        return kvPerInstance ?? d.kvPerInstance
    }
}
