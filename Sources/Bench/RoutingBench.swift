import Cluster
import Dispatch
import Engine
import Foundation
import Kernels
import Router
import Scheduler

/// `memserve bench routing`: a multi-turn workload over several colocated instances in one
/// process, once per routing policy, beside one instance that has all their memory.
///
/// Users come in groups that share a long system prompt or document (sharing that session
/// affinity cannot see, since every conversation is its own session); conversation lengths are
/// skewed (a few long, hot ones); conversations arrive as a Poisson process and each turn
/// resends the whole history.
public enum RoutingBench {
    public struct Workload: Sendable {
        public var instances = 4
        public var groups = 4
        public var conversations = 24
        /// Turns of a hot conversation, and of the others; `hotFraction` of them are hot.
        public var hotTurns = 6
        public var coldTurns = 2
        public var hotFraction = 0.25
        public var documentTokens = 384
        public var userTokens = 32
        public var answerTokens = 12
        public var arrivalRate = 4.0
        public var seed: UInt64 = 11
        /// Zipf exponent of the groups' popularity (0: every group equally likely).
        public var groupSkew = 0.0
        public init() {}

        /// Tokens of every distinct prefix the workload builds: the documents and each
        /// conversation's turns (user messages and answers).
        public var workingSetTokens: Int {
            let hot = max(1, Int((Double(conversations) * hotFraction).rounded()))
            let hotConversations = (0..<conversations).filter { $0 % max(1, conversations / hot) == 0 }.count
            let turns = hotConversations * hotTurns + (conversations - hotConversations) * coldTurns
            return groups * documentTokens + turns * (userTokens + answerTokens)
        }
    }

    public struct PolicyResult: Codable, Sendable {
        public var hit_rate: Double
        public var ttft_avg_ms: Double, ttft_p99_ms: Double
        public var jct_avg_ms: Double, jct_p99_ms: Double
        public var requests: Int
        /// Requests that ended without producing a token (not in the latencies).
        public var empty: Int
        /// Cached blocks the instances evicted for room over the run.
        public var evicted_blocks = 0
    }

    public struct Result: Codable, Sendable {
        public var instances: Int
        public var conversations: Int
        public var requests: Int
        public var arrival_rate_per_s: Double
        public var policies: [String: PolicyResult]
        public var single_instance_hit_rate: Double
        public var single_instance: PolicyResult
        /// P99 TTFT of prompt-tree against the other policies (1 - ratio: the improvement).
        public var prompt_tree_p99_ttft_improvement: [String: Double]
    }

    /// One conversation: its group's document, then its turns' user messages.
    struct Conversation {
        var group: Int
        var session: String
        var turns: [[Int32]]
        var arrival: Double
    }

    static func conversations(_ w: Workload, vocab: Int) -> (documents: [[Int32]], conversations: [Conversation]) {
        var random = RandomSource(seed: w.seed)
        func text(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32(3 + random.next() % UInt64(vocab - 3)) } }
        let documents = (0..<w.groups).map { _ in text(w.documentTokens) }
        let weights = (0..<w.groups).map { 1 / pow(Double($0 + 1), w.groupSkew) }
        let totalWeight = weights.reduce(0, +)
        func pickGroup() -> Int {
            guard w.groupSkew > 0 else { return Int(random.next() % UInt64(w.groups)) }
            var x = Double(random.nextUnit()) * totalWeight
            for (g, wt) in weights.enumerated() {
                x -= wt
                if x < 0 { return g }
            }
            return w.groups - 1
        }
        var t = 0.0
        let hot = max(1, Int((Double(w.conversations) * w.hotFraction).rounded()))
        let convs = (0..<w.conversations).map { c -> Conversation in
            t += -log(max(1e-9, Double(random.nextUnit()))) / w.arrivalRate
            let turns = c % (w.conversations / hot) == 0 ? w.hotTurns : w.coldTurns
            return Conversation(group: pickGroup(), session: "user-\(c)",
                                turns: (0..<turns).map { _ in text(w.userTokens) }, arrival: t)
        }
        return (documents, convs)
    }

    public static func run(model: LoadedModel, workload w: Workload = Workload(), kvMegabytes: Int = 256,
                           router: ClusterRouter.Configuration = .init(), policies: [PolicyName] = PolicyName.allCases,
                           progress: (String) -> Void = { _ in }) async throws -> Result {
        let vocab = model.transformer.configuration.vocabularySize
        let (documents, convs) = conversations(w, vocab: vocab)
        let threads = model.pool.threadCount
        var results: [String: PolicyResult] = [:]
        for policy in policies {
            progress(policy.rawValue)
            var spec = DeploymentSpec()
            spec.router = router
            spec.colocated = w.instances
            spec.threads = threads
            spec.hotBlocks = model.blocks(forMegabytes: kvMegabytes) * w.instances
            spec.router.policy = policy
            let backend = try await RoutedDeployment.start(model: model, spec: spec)
            let running = Task { try await backend.run() }
            var r = try await replay(backend, w, documents, convs)
            r.evicted_blocks = backend.stats.evictions
            results[policy.rawValue] = r
            await backend.stop()
            _ = try? await running.value
        }
        progress("single instance")
        var spec = DeploymentSpec()
        spec.threads = threads
        spec.hotBlocks = model.blocks(forMegabytes: kvMegabytes) * w.instances
        let single = try await Deployment.start(model: model.sibling(threads: threads), spec: spec)
        var one = try await replay(single, w, documents, convs)
        one.evicted_blocks = single.stats.evictions
        single.shutdown()
        var improvement: [String: Double] = [:]
        if let p99 = results[PolicyName.promptTree.rawValue]?.ttft_p99_ms {
            for (k, v) in results where k != PolicyName.promptTree.rawValue && v.ttft_p99_ms > 0 { improvement[k] = 1 - p99 / v.ttft_p99_ms }
        }
        return Result(instances: w.instances, conversations: w.conversations, requests: one.requests, arrival_rate_per_s: w.arrivalRate,
                      policies: results, single_instance_hit_rate: one.hit_rate, single_instance: one,
                      prompt_tree_p99_ttft_improvement: improvement)
    }

    struct Sample { var ttft: Double?; var jct: Double; var prompt: Int; var cached: Int }

    static func replay(_ backend: any InferenceBackend, _ w: Workload, _ documents: [[Int32]], _ convs: [Conversation]) async throws -> PolicyResult {
        var sampling = SamplingParameters.greedy
        sampling.maxTokens = w.answerTokens
        sampling.ignoreEOS = true
        let params = sampling
        let start = DispatchTime.now().uptimeNanoseconds
        let samples = try await withThrowingTaskGroup(of: [Sample].self) { group in
            for c in convs {
                let document = documents[c.group]
                group.addTask {
                    let now = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    if c.arrival > now { try await Task.sleep(for: .seconds(c.arrival - now)) }
                    var history = document
                    var out: [Sample] = []
                    for m in c.turns {
                        history += m
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        let (_, stream) = try backend.submit(ServingRequest(promptTokens: history, sampling: params, session: c.session))
                        var first: UInt64 = 0, cached = 0
                        var answer: [Int32] = []
                        for try await o in stream {
                            if let tok = o.token {
                                if answer.isEmpty { first = DispatchTime.now().uptimeNanoseconds; cached = o.cachedTokens }
                                answer.append(tok)
                            }
                        }
                        let end = DispatchTime.now().uptimeNanoseconds
                        out.append(Sample(ttft: answer.isEmpty ? nil : Double(first - t0) / 1e6, jct: Double(end - t0) / 1e6,
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
        let answered = samples.filter { $0.ttft != nil }
        let ttft = answered.compactMap(\.ttft)
        return PolicyResult(hit_rate: Double(samples.map(\.cached).reduce(0, +)) / Double(max(1, samples.map(\.prompt).reduce(0, +))),
                            ttft_avg_ms: avg(ttft), ttft_p99_ms: percentile(ttft, 0.99),
                            jct_avg_ms: avg(answered.map(\.jct)), jct_p99_ms: percentile(answered.map(\.jct), 0.99),
                            requests: samples.count, empty: samples.count - answered.count)
    }
}
