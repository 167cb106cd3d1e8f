import Cluster
import Engine
import Foundation
import MemPool
import Model

/// `memserve bench pd`: the same multi-turn chat workload (ShareGPT-shaped: a shared system
/// prompt, each turn resending the history) with conversations arriving as a Poisson process,
/// served colocated and disaggregated in each PD mode. Reports TTFT, TPOT and JCT, avg and P99.
public enum PDBench {
    public struct Latency: Codable, Sendable {
        public var ttft_avg_ms: Double, ttft_p99_ms: Double
        public var tpot_avg_ms: Double, tpot_p99_ms: Double
        public var jct_avg_ms: Double, jct_p99_ms: Double
        public var cached_prompt_fraction: Double
        public var requests: Int
    }

    public struct Result: Codable, Sendable {
        public var conversations: Int
        public var turns: Int
        public var arrival_rate_per_s: Double
        /// How the PD instances moved KV ("inprocess" or "grpc").
        public var transport: String
        public var configurations: [String: Latency]
    }

    public struct Workload: Sendable {
        public var conversations = 12
        public var turns = 3
        public var systemTokens = 192
        public var userTokens = 48
        public var answerTokens = 24
        public var arrivalRate = 2.0
        public var seed: UInt64 = 9
        public init() {}
    }

    /// How the PD configurations' instances talk: KV copied between pools of one process, or
    /// over loopback gRPC (the network path, as between processes).
    public enum Transport: String, Sendable, CaseIterable, Codable {
        case inprocess
        case grpc
    }

    public static func run(model: LoadedModel, workload w: Workload = Workload(), kvMegabytes: Int = 512,
                           transport: Transport = .inprocess, progress: (String) -> Void = { _ in }) async throws -> Result {
        var configs: [String: Latency] = [:]
        let threads = model.pool.threadCount
        for name in ["colocated"] + PDMode.allCases.map(\.rawValue) {
            progress(name)
            var spec = DeploymentSpec()
            spec.threads = threads
            spec.hotBlocks = model.blocks(forMegabytes: kvMegabytes)
            spec.transport = transport == .grpc ? .loopbackGRPC : .inProcess
            if let mode = PDMode(rawValue: name) {
                spec.colocated = 0
                spec.prefill = 1
                spec.decode = 1
                spec.mode = mode
            }
            let backend = try await Deployment.start(model: model.sibling(threads: threads), spec: spec)
            let running = Task { try await backend.run() }
            configs[name] = try await replay(backend, w, vocab: model.transformer.configuration.vocabularySize)
            if let routed = backend as? RoutedDeployment { await routed.stop() } else { backend.shutdown() }
            _ = try? await running.value
        }
        return Result(conversations: w.conversations, turns: w.turns, arrival_rate_per_s: w.arrivalRate,
                      transport: transport.rawValue, configurations: configs)
    }

    struct Sample { var ttft: Double; var tpot: Double; var jct: Double; var prompt: Int; var cached: Int }

    static func replay(_ backend: any InferenceBackend, _ w: Workload, vocab: Int) async throws -> Latency {
        var random = RandomSource(seed: w.seed)
        func text(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32(3 + random.next() % UInt64(vocab - 3)) } }
        let system = text(w.systemTokens)
        let messages = (0..<w.conversations).map { _ in (0..<w.turns).map { _ in text(w.userTokens) } }
        var arrivals: [Double] = []
        var t = 0.0
        for _ in 0..<w.conversations {
            t += -log(max(1e-9, Double(random.nextUnit()))) / w.arrivalRate
            arrivals.append(t)
        }
        var sampling = SamplingParameters.greedy
        sampling.maxTokens = w.answerTokens
        sampling.ignoreEOS = true
        let params = sampling
        let start = DispatchTime.now().uptimeNanoseconds
        let samples = try await withThrowingTaskGroup(of: [Sample].self) { group in
            for c in 0..<w.conversations {
                let delay = arrivals[c], msgs = messages[c]
                group.addTask {
                    let now = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    if delay > now { try await Task.sleep(for: .seconds(delay - now)) }
                    var history = system
                    var out: [Sample] = []
                    for m in msgs {
                        history += m
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        let (_, stream) = try backend.submit(promptTokens: history, sampling: params)
                        var first: UInt64 = 0
                        var answer: [Int32] = []
                        var cached = 0
                        for try await o in stream {
                            if let tok = o.token {
                                if answer.isEmpty { first = DispatchTime.now().uptimeNanoseconds; cached = o.cachedTokens }
                                answer.append(tok)
                            }
                        }
                        let end = DispatchTime.now().uptimeNanoseconds
                        let tpot = answer.count > 1 ? Double(end - first) / 1e6 / Double(answer.count - 1) : 0
                        out.append(Sample(ttft: Double(first - t0) / 1e6, tpot: tpot, jct: Double(end - t0) / 1e6,
                                          prompt: history.count, cached: cached))
                        history += answer
                    }
                    return out
                }
            }
            var all: [Sample] = []
            for try await s in group { all += s }
            return all
        }
        func avg(_ xs: [Double]) -> Double { xs.reduce(0, +) / Double(max(1, xs.count)) }
        return Latency(ttft_avg_ms: avg(samples.map(\.ttft)), ttft_p99_ms: percentile(samples.map(\.ttft), 0.99),
                       tpot_avg_ms: avg(samples.map(\.tpot)), tpot_p99_ms: percentile(samples.map(\.tpot), 0.99),
                       jct_avg_ms: avg(samples.map(\.jct)), jct_p99_ms: percentile(samples.map(\.jct), 0.99),
                       cached_prompt_fraction: Double(samples.map(\.cached).reduce(0, +)) / Double(max(1, samples.map(\.prompt).reduce(0, +))),
                       requests: samples.count)
    }
}
