import ArgumentParser
import Bench
import Foundation

struct ElasticBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "elastic",
        abstract: "The elastic pool's peer tier: a working set larger than one instance's KV memory and smaller than the cluster's, over several instances with and without the peer tier, beside one instance with all their memory (hit rate, TTFT, bytes moved).")

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var output: BenchOutputArguments
    @Option var instances = 4
    @Option var conversations = 32
    @Option var groups = 8
    @Option(name: .customLong("group-skew"), help: "Zipf exponent of the groups' popularity.") var groupSkew = 1.0
    @Option(name: .customLong("document-tokens"), help: "Tokens of each group's shared document.") var documentTokens = 512
    @Option(name: .customLong("rate"), help: "Conversations arriving per second (Poisson).") var rate = 2.0
    @Option(name: .customLong("kv-mb-per-instance"), help: "Hot KV memory of each instance, MiB (the single instance gets all of it).")
    var kvPerInstance = 160
    @Option(name: .customLong("bench-peer-share"), help: "The peer tier's share of each instance's blocks in the run with it.")
    var benchPeerShare = 0.5
    @Option(help: "Seed of the workload.") var seed: UInt64 = 11
    @OptionGroup var router: RouterArguments

    func validate() throws {
        if instances < 2 || instances > 16 { throw ValidationError("--instances must be between 2 and 16") }
        if conversations < 1 || groups < 1 || documentTokens < 1 || kvPerInstance < 1 { throw ValidationError("counts must be positive") }
        if !(rate > 0) || groupSkew < 0 { throw ValidationError("--rate must be positive and --group-skew not negative") }
        if !(benchPeerShare > 0 && benchPeerShare <= 1) { throw ValidationError("--bench-peer-share must be in (0, 1]") }
    }

    func run() async throws {
        MemServe.bootstrapLogging(verbose: modelArguments.verbose)
        let model = try modelArguments.load()
        var w = RoutingBench.Workload()
        w.instances = instances
        w.conversations = conversations
        w.groups = groups
        w.groupSkew = groupSkew
        w.documentTokens = documentTokens
        w.arrivalRate = rate
        w.seed = seed
        let r = try await ElasticBench.run(model: model, workload: w, kvMegabytes: kvPerInstance, peerShare: benchPeerShare,
                                           router: router.configuration) {
            FileHandle.standardError.write(Data("bench: \($0)\n".utf8))
        }
        if output.json { try printJSON(r); return }
        func f(_ x: Double, _ d: Int = 1) -> String { String(format: "%.\(d)f", x) }
        let fits = r.working_set_mb > r.instance_kv_mb && r.working_set_mb < r.cluster_kv_mb
        printTable([
            ("workload", "\(r.requests) requests; working set \(f(r.working_set_mb)) MiB, one instance \(f(r.instance_kv_mb)) MiB, cluster \(f(r.cluster_kv_mb)) MiB\(fits ? "" : " (not between one instance and the cluster)")"),
            ("peer tier on", "hit rate \(f(100 * r.hit_rate_on))%, TTFT avg / P99 \(f(r.ttft_avg_ms_on)) / \(f(r.ttft_p99_ms_on)) ms, \(r.evicted_blocks_on) blocks evicted, \(r.spilled_blocks) spilled, \(r.pushed_blocks_on) pushed"),
            ("peer tier off", "hit rate \(f(100 * r.hit_rate_off))%, TTFT avg / P99 \(f(r.ttft_avg_ms_off)) / \(f(r.ttft_p99_ms_off)) ms, \(r.evicted_blocks_off) blocks evicted, \(r.pushed_blocks_off) pushed"),
            ("one instance", "hit rate \(f(100 * r.hit_rate_single))%, TTFT avg / P99 \(f(r.ttft_avg_ms_single)) / \(f(r.ttft_p99_ms_single)) ms (all the memory)"),
            ("bytes moved", "\(f(Double(r.bytes_moved) / 1_048_576)) MiB with the peer tier, \(f(Double(r.bytes_moved_off) / 1_048_576)) MiB without"),
            ("peer tier", "+\(f(r.gain_points)) points of hit rate; \(f(r.gap_to_single_points)) points below one instance (target: at most 10)"),
        ])
    }
}
