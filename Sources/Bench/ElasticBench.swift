import Cluster
import Engine
import Foundation
import Router
import Scheduler

/// `memserve bench elastic`: the elastic pool's peer tier. A multi-turn workload whose working
/// set is larger than one instance's KV memory and smaller than the cluster's, with groups of
/// skewed popularity (so the instances that hold the popular documents fill first), over
/// several colocated instances in one process with and without the peer tier, beside one
/// instance that has all their memory.
public enum ElasticBench {
    public struct Result: Codable, Sendable {
        public var instances: Int
        public var requests: Int
        /// The workload's distinct prefixes, and the memory of one instance and of all.
        public var working_set_mb: Double
        public var instance_kv_mb: Double
        public var cluster_kv_mb: Double
        public var hit_rate_on: Double
        public var hit_rate_off: Double
        public var hit_rate_single: Double
        public var ttft_avg_ms_on: Double
        public var ttft_avg_ms_off: Double
        public var ttft_avg_ms_single: Double
        public var ttft_p99_ms_on: Double
        public var ttft_p99_ms_off: Double
        public var ttft_p99_ms_single: Double
        /// KV bytes moved between instances with the peer tier: spills, and transfers the
        /// scheduler ordered (fetches of spilled prefixes among them); and without it.
        public var bytes_moved: Int
        public var bytes_moved_off: Int
        public var spilled_blocks: Int
        public var pushed_blocks_on: Int
        public var pushed_blocks_off: Int
        /// Cached blocks dropped from the instances over the run; with the peer tier, those
        /// among them that were peers' (guest) blocks, which give way first by design.
        public var evicted_blocks_on: Int
        public var evicted_blocks_off: Int
        public var evicted_guest_blocks_on: Int
        /// Points of hit rate the peer tier gains, and how far it stays from one instance
        /// with all the memory (the target: at most 10).
        public var gain_points: Double
        public var gap_to_single_points: Double
        public var on: RoutingBench.PolicyResult
        public var off: RoutingBench.PolicyResult
        public var single: RoutingBench.PolicyResult
    }

    public static func run(model: LoadedModel, workload w: RoutingBench.Workload, kvMegabytes: Int, peerShare: Double = 0.5,
                           router: ClusterRouter.Configuration = .init(),
                           progress: (String) -> Void = { _ in }) async throws -> Result {
        let vocab = model.transformer.configuration.vocabularySize
        let (documents, convs) = RoutingBench.conversations(w, vocab: vocab)
        let threads = model.pool.threadCount
        let blockBytes = model.transformer.kvLayout.blockBytes, blockTokens = model.transformer.kvLayout.blockTokens
        struct Run { var result: RoutingBench.PolicyResult; var spilled: Int; var pushed: Int; var guestEvicted: Int }
        func cluster(share: Double) async throws -> Run {
            var spec = DeploymentSpec()
            spec.router = router
            spec.colocated = w.instances
            spec.threads = threads
            spec.hotBlocks = model.blocks(forMegabytes: kvMegabytes) * w.instances
            spec.peerShare = share
            let d = try await RoutedDeployment.start(model: model, spec: spec)
            let running = Task { try await d.run() }
            var r = try await RoutingBench.replay(d, w, documents, convs)
            r.evicted_blocks = d.stats.evictions
            let stats = d.nodes.map(\.transferStats)
            var guestEvicted = 0
            for n in d.nodes { guestEvicted += try await n.engine.perform { $0.core.memPool.stats.guestEvicted } }
            await d.stop()
            _ = try? await running.value
            return Run(result: r, spilled: stats.map(\.blocksSpilled).reduce(0, +), pushed: stats.map(\.blocksPushed).reduce(0, +),
                       guestEvicted: guestEvicted)
        }
        progress("\(w.instances) instances with the peer tier")
        let on = try await cluster(share: peerShare)
        progress("\(w.instances) instances without it")
        let off = try await cluster(share: 0)
        progress("one instance with all the memory")
        var spec = DeploymentSpec()
        spec.threads = threads
        spec.hotBlocks = model.blocks(forMegabytes: kvMegabytes) * w.instances
        let single = try await Deployment.start(model: model.sibling(threads: threads), spec: spec)
        var one = try await RoutingBench.replay(single, w, documents, convs)
        one.evicted_blocks = single.stats.evictions
        single.shutdown()
        let mb = Double(blockBytes) / Double(blockTokens) / 1_048_576
        let instanceMB = Double(model.blocks(forMegabytes: kvMegabytes) * blockBytes) / 1_048_576
        return Result(instances: w.instances, requests: one.requests, working_set_mb: Double(w.workingSetTokens) * mb,
                      instance_kv_mb: instanceMB, cluster_kv_mb: instanceMB * Double(w.instances),
                      hit_rate_on: on.result.hit_rate, hit_rate_off: off.result.hit_rate, hit_rate_single: one.hit_rate,
                      ttft_avg_ms_on: on.result.ttft_avg_ms, ttft_avg_ms_off: off.result.ttft_avg_ms, ttft_avg_ms_single: one.ttft_avg_ms,
                      ttft_p99_ms_on: on.result.ttft_p99_ms, ttft_p99_ms_off: off.result.ttft_p99_ms, ttft_p99_ms_single: one.ttft_p99_ms,
                      bytes_moved: (on.spilled + on.pushed) * blockBytes, bytes_moved_off: off.pushed * blockBytes,
                      spilled_blocks: on.spilled, pushed_blocks_on: on.pushed, pushed_blocks_off: off.pushed,
                      evicted_blocks_on: on.result.evicted_blocks, evicted_blocks_off: off.result.evicted_blocks,
                      evicted_guest_blocks_on: on.guestEvicted,
                      gain_points: 100 * (on.result.hit_rate - off.result.hit_rate),
                      gap_to_single_points: 100 * (one.hit_rate - on.result.hit_rate),
                      on: on.result, off: off.result, single: one)
    }
}
