import ArgumentParser
import Bench
import Foundation

struct ElasticBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "elastic",
        abstract: "The elastic pool's peer tier: a working set larger than one instance's KV memory and smaller than the cluster's, over several instances with and without the peer tier, beside one instance with all their memory (hit rate, TTFT, bytes moved).")

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var output: BenchOutputArguments
    @OptionGroup var chats: ChatWorkloadArguments
    @Option(name: .customLong("group-skew"), help: "Zipf exponent of the groups' popularity.") var groupSkew = 1.0
    @Option(name: .customLong("bench-peer-share"), help: "The peer tier's share of each instance's blocks in the run with it.")
    var benchPeerShare = 0.5
    @OptionGroup var router: RouterArguments

    func validate() throws {
        try chats.check()
        if groupSkew < 0 { throw ValidationError("--group-skew must not be negative") }
        if !(benchPeerShare > 0 && benchPeerShare <= 1) { throw ValidationError("--bench-peer-share must be in (0, 1]") }
    }

    func run() async throws {
        MemServe.bootstrapLogging(verbose: modelArguments.verbose)
        let model = try modelArguments.load()
        var w = RoutingBench.Workload()
        let kvPerInstance = chats.apply(to: &w, defaults: .init(conversations: 32, groups: 8, documentTokens: 512, rate: 2, kvPerInstance: 160))
        w.groupSkew = groupSkew
        let r = try await ElasticBench.run(model: model, workload: w, kvMegabytes: kvPerInstance, peerShare: benchPeerShare,
                                           router: router.configuration) {
            FileHandle.standardError.write(Data("bench: \($0)\n".utf8))
        }
        if output.json { try printJSON(r); return }
        func f(_ x: Double, _ d: Int = 1) -> String { String(format: "%.\(d)f", x) }
        let fits = r.working_set_mb > r.instance_kv_mb && r.working_set_mb < r.cluster_kv_mb
        printTable([
            ("workload", "\(r.requests) requests; working set \(f(r.working_set_mb)) MiB, one instance \(f(r.instance_kv_mb)) MiB, cluster \(f(r.cluster_kv_mb)) MiB\(fits ? "" : " (not between one instance and the cluster)")"),
            ("peer tier on", "hit rate \(f(100 * r.hit_rate_on))%, TTFT avg / P99 \(f(r.ttft_avg_ms_on)) / \(f(r.ttft_p99_ms_on)) ms, \(r.evicted_blocks_on) blocks evicted (\(r.evicted_guest_blocks_on) of them peers'), \(r.spilled_blocks) spilled, \(r.pushed_blocks_on) pushed"),
            ("peer tier off", "hit rate \(f(100 * r.hit_rate_off))%, TTFT avg / P99 \(f(r.ttft_avg_ms_off)) / \(f(r.ttft_p99_ms_off)) ms, \(r.evicted_blocks_off) blocks evicted, \(r.pushed_blocks_off) pushed"),
            ("one instance", "hit rate \(f(100 * r.hit_rate_single))%, TTFT avg / P99 \(f(r.ttft_avg_ms_single)) / \(f(r.ttft_p99_ms_single)) ms (all the memory)"),
            ("bytes moved", "\(f(Double(r.bytes_moved) / 1_048_576)) MiB with the peer tier, \(f(Double(r.bytes_moved_off) / 1_048_576)) MiB without"),
            ("peer tier", "+\(f(r.gain_points)) points of hit rate; \(f(r.gap_to_single_points)) points below one instance (target: at most 10)"),
        ])
    }
}
