/// How far `id` comes after `last` in identifier order, wrapping: the next in a rotation has the
/// smallest distance.
@inline(__always)
func rotationDistance(_ id: InstanceID, after last: InstanceID?) -> UInt64 {
    guard let last else { return UInt64(id.rawValue) + 1 }
    return id > last ? UInt64(id.rawValue - last.rawValue) : UInt64(id.rawValue) + (1 << 32) - UInt64(last.rawValue)
}

/// Each request to the next instance in identifier order, whatever it caches or carries.
public struct RoundRobinPolicy: RoutingPolicy {
    private var last: InstanceID?

    public init() {}

    public var name: PolicyName { .roundRobin }

    public mutating func choose(_ request: RoutingRequest, candidates: [Candidate]) -> RoutingChoice {
        let scores = candidates.map { Double(rotationDistance($0.instance, after: last)) }
        guard let k = scores.indices.min(by: { scores[$0] < scores[$1] }) else {
            return RoutingChoice(index: nil, scores: [], unit: "turns", reason: "no \(request.kind) instance")
        }
        last = candidates[k].instance
        return RoutingChoice(index: k, scores: scores, unit: "turns", reason: "\(candidates[k].instance) is next in turn")
    }
}

/// The instance with the fewest requests (running and waiting); ties go to the fewest queued
/// prefill tokens, then the most free blocks, then in turn.
public struct LeastLoadedPolicy: RoutingPolicy {
    private var last: InstanceID?

    public init() {}

    public var name: PolicyName { .leastLoaded }

    public mutating func choose(_ request: RoutingRequest, candidates: [Candidate]) -> RoutingChoice {
        guard let k = Self.leastLoaded(candidates, after: last) else {
            return RoutingChoice(index: nil, scores: [], unit: "requests", reason: "no \(request.kind) instance")
        }
        last = candidates[k].instance
        let c = candidates[k]
        return RoutingChoice(index: k, scores: candidates.map { Double($0.load.requests) }, unit: "requests",
                             reason: "\(c.instance) is least loaded (\(c.load.requests) requests, \(c.load.queuedPrefillTokens) queued prefill tokens)")
    }

    /// The least loaded candidate's index.
    static func leastLoaded(_ candidates: [Candidate], after last: InstanceID?) -> Int? {
        var best: Int? = nil
        var bestKey = (0, 0, 0, UInt64(0))
        for (k, c) in candidates.enumerated() {
            let key = (c.load.requests, c.load.queuedPrefillTokens, -c.load.freeBlocks, rotationDistance(c.instance, after: last))
            if best == nil || key < bestKey {
                best = k
                bestKey = key
            }
        }
        return best
    }
}

/// Sticky routing by a session key (the request's `user` field or a session header): a session's
/// first request goes to the least loaded instance, which becomes its home; later ones follow it
/// there, and a session whose home left is re-homed the same way. Requests without a key go to
/// the least loaded instance. At most `capacity` homes are remembered (the least recently used
/// half is forgotten when full).
public struct SessionPolicy: RoutingPolicy {
    /// Homes remembered.
    public var capacity: Int
    private var homes: [String: (instance: InstanceID, used: UInt64)] = [:]
    private var clock: UInt64 = 0
    private var last: InstanceID?

    public init(capacity: Int = 1 << 16) { self.capacity = max(1, capacity) }

    public var name: PolicyName { .session }

    /// The home of a session, if it has one.
    public func home(of session: String) -> InstanceID? { homes[session]?.instance }

    public mutating func choose(_ request: RoutingRequest, candidates: [Candidate]) -> RoutingChoice {
        let scores = candidates.map { Double($0.load.requests) }
        guard !candidates.isEmpty else {
            return RoutingChoice(index: nil, scores: [], unit: "requests", reason: "no \(request.kind) instance")
        }
        clock = max(clock &+ 1, request.now)
        guard let key = request.session else {
            let k = LeastLoadedPolicy.leastLoaded(candidates, after: last)!
            last = candidates[k].instance
            return RoutingChoice(index: k, scores: scores, unit: "requests",
                                 reason: "no session key: \(candidates[k].instance) is least loaded")
        }
        let old = homes[key]?.instance
        if let old, let k = candidates.firstIndex(where: { $0.instance == old }) {
            homes[key] = (old, clock)
            return RoutingChoice(index: k, scores: scores, unit: "requests", reason: "session \(key) stays on its home \(old)")
        }
        let k = LeastLoadedPolicy.leastLoaded(candidates, after: last)!
        let id = candidates[k].instance
        last = id
        if homes[key] == nil && homes.count >= capacity { forgetOldest() }
        homes[key] = (id, clock)
        let reason = old.map { "session \(key) re-homed from \($0) (gone) to least loaded \(id)" }
            ?? "new session \(key) homed on least loaded \(id)"
        return RoutingChoice(index: k, scores: scores, unit: "requests", reason: reason)
    }

    private mutating func forgetOldest() {
        let byAge = homes.sorted { $0.value.used < $1.value.used }
        for (k, _) in byAge.prefix(max(1, homes.count / 2)) { homes.removeValue(forKey: k) }
    }
}

/// The default: the instance with the best predicted time to first token, with the work the
/// request adds weighed in. It weighs the cached prefix (less to prefill) against load (more to
/// wait for), so affinity never makes a hot spot: once a holder's queue outweighs what its cache
/// saves, another instance wins — and, with the cost model, may receive the cached blocks
/// instead of recomputing them.
///
/// Score of a candidate = work ahead of the request (its queued prefill tokens, plus a
/// per-request overhead for each waiting one, plus running sequences each counted as
/// `runningPrefillTokens` tokens) at its measured prefill speed, + `prefillWeight` times the
/// prefill of this prompt's uncached part at the prompt's length (or the transfer of the best
/// holder's blocks and the prefill of what remains, when cheaper), + a penalty for blocks it
/// lacks room for and for cached blocks it would evict. What the instance caches includes
/// prefixes that requests routed there before are computing (``Candidate/inFlightBlocks``).
///
/// When loads are unbalanced past both thresholds (as SGLang's cache-aware router does:
/// `max - min > balanceAbsoluteThreshold` and `max > min * balanceRelativeThreshold` requests),
/// the least loaded instance is taken instead.
public struct PromptTreePolicy: RoutingPolicy {
    public struct Configuration: Sendable, Hashable, Codable {
        /// Requests by which the busiest instance must exceed the idlest to fall back.
        public var balanceAbsoluteThreshold: Int
        /// Ratio by which the busiest instance must exceed the idlest to fall back.
        public var balanceRelativeThreshold: Double
        /// Prefill tokens one running sequence is worth in the work ahead of a new request: its
        /// decode steps interleave with the prefill.
        public var runningPrefillTokens: Double
        /// Weight of the penalty for blocks an instance lacks room for (as if those tokens were
        /// prefilled once more).
        public var memoryPressureWeight: Double
        /// Weight of the penalty for cached blocks the request would evict (the chance that a
        /// later request needs them again, as if they were then prefilled once more). It steers
        /// new prefixes to instances with unused memory instead of over others' caches.
        public var evictionWeight: Double
        /// Weight of the request's own prefill against the work queued ahead of it. Above 1, the
        /// work a request adds to an instance (which later requests wait behind) counts beyond
        /// its own TTFT, so a prefix is not computed again on an idle instance when its holder
        /// is only a little busier: the cluster's cache and compute go further.
        public var prefillWeight: Double

        public init(balanceAbsoluteThreshold: Int = 32, balanceRelativeThreshold: Double = 1.5,
                    runningPrefillTokens: Double = 8, memoryPressureWeight: Double = 1, evictionWeight: Double = 0.5,
                    prefillWeight: Double = 2) {
            self.balanceAbsoluteThreshold = balanceAbsoluteThreshold
            self.balanceRelativeThreshold = balanceRelativeThreshold
            self.runningPrefillTokens = runningPrefillTokens
            self.memoryPressureWeight = memoryPressureWeight
            self.evictionWeight = evictionWeight
            self.prefillWeight = prefillWeight
        }
    }

    public var configuration: Configuration
    public var costModel: CostModel
    private var last: InstanceID?

    public init(configuration: Configuration = .init(), costModel: CostModel = CostModel()) {
        self.configuration = configuration
        self.costModel = costModel
    }

    public var name: PolicyName { .promptTree }

    /// The parts of a candidate's predicted TTFT, seconds.
    public struct Prediction: Sendable, Hashable {
        /// Work queued ahead of the request.
        public var queue: Double
        /// This prompt's prefill (and transfer, when ordered).
        public var prefill: Double
        /// Penalty for missing room.
        public var memory: Double
        /// Whether the prefill part assumes a transfer from the best holder.
        public var transfer: Bool
        /// ``Configuration/prefillWeight``.
        public var prefillWeight: Double = 1

        /// The predicted TTFT.
        public var seconds: Double { queue + prefill + memory }
        /// The score compared: the TTFT with the prefill weighted.
        public var total: Double { queue + prefill * prefillWeight + memory }
    }

    /// The predicted TTFT of `c` for `request`, with `holder` (the candidate caching the most of
    /// the prompt) as a possible transfer source.
    public func predict(_ c: Candidate, _ request: RoutingRequest, holder: Candidate?) -> Prediction {
        let part = prefillPart(c, request, holder: holder)
        return predict(c, request, prefill: part.seconds, transfer: part.transfer)
    }

    /// The prompt's prefill on `c` (or transfer and prefill): it depends only on the profile and
    /// the match, which most candidates share.
    func prefillPart(_ c: Candidate, _ request: RoutingRequest, holder: Candidate?) -> (seconds: Double, transfer: Bool) {
        let p = c.profile, n = request.promptTokens
        let prefill = p.prefillSeconds(tokens: n, cachedTokens: CostModel.usableCachedTokens(c.expectedBlocks * p.blockTokens, promptTokens: n))
        if let holder, let order = costModel.order(promptTokens: n, promptBlocks: request.promptBlocks, destination: c, source: holder) {
            let moved = order.predictedTransferSeconds
                + p.prefillSeconds(tokens: n, cachedTokens: CostModel.usableCachedTokens(order.toBlock * p.blockTokens, promptTokens: n))
            if moved < prefill { return (moved, true) }
        }
        return (prefill, false)
    }

    @inline(__always)
    func predict(_ c: Candidate, _ request: RoutingRequest, prefill: Double, transfer: Bool) -> Prediction {
        let p = c.profile, l = c.load, n = request.promptTokens
        let queue = Double(max(0, l.queuedPrefillTokens)) * p.prefillSecondsPerToken
            + Double(max(0, l.waiting)) * p.prefillOverheadSeconds
            + Double(max(0, l.running)) * configuration.runningPrefillTokens * p.prefillSecondsPerToken
        var memory = 0.0
        if l.totalBlocks > 0 {
            let need = (n + p.blockTokens - 1) / p.blockTokens - c.expectedBlocks
            let free = max(0, l.freeBlocks)
            let short = max(0, need - free)
            let evicted = max(0, min(need, free) - max(0, l.unusedBlocks))
            memory = (Double(short) * configuration.memoryPressureWeight + Double(evicted) * configuration.evictionWeight)
                * Double(p.blockTokens) * p.prefillSecondsPerToken
        }
        return Prediction(queue: queue, prefill: prefill, memory: memory, transfer: transfer,
                          prefillWeight: configuration.prefillWeight)
    }

    public mutating func choose(_ request: RoutingRequest, candidates: [Candidate]) -> RoutingChoice {
        guard !candidates.isEmpty else {
            return RoutingChoice(index: nil, scores: [], unit: "seconds", reason: "no \(request.kind) instance")
        }
        let holderIndex = CostModel.bestHolder(candidates)
        let holder = holderIndex.map { candidates[$0] }
        var predictions: [Prediction] = []
        predictions.reserveCapacity(candidates.count)
        // Two memos: instances caching nothing of the prompt (most), and the last other match.
        typealias Part = (seconds: Double, transfer: Bool)
        var cold: (profile: InstanceProfile, part: Part)? = nil
        var warm: (profile: InstanceProfile, matched: Int, part: Part)? = nil
        let holderID = holder?.instance
        for c in candidates {
            let part: Part
            if c.instance == holderID {
                part = prefillPart(c, request, holder: holder)
            } else if c.expectedBlocks == 0 {
                if let m = cold, m.profile == c.profile {
                    part = m.part
                } else {
                    part = prefillPart(c, request, holder: holder)
                    cold = (c.profile, part)
                }
            } else if let m = warm, m.matched == c.expectedBlocks, m.profile == c.profile {
                part = m.part
            } else {
                part = prefillPart(c, request, holder: holder)
                warm = (c.profile, c.expectedBlocks, part)
            }
            predictions.append(predict(c, request, prefill: part.seconds, transfer: part.transfer))
        }
        let scores = predictions.map(\.total)

        var minLoad = Int.max, maxLoad = Int.min
        for c in candidates {
            minLoad = min(minLoad, c.load.requests)
            maxLoad = max(maxLoad, c.load.requests)
        }
        if maxLoad - minLoad > configuration.balanceAbsoluteThreshold,
           Double(maxLoad) > Double(minLoad) * configuration.balanceRelativeThreshold {
            let k = LeastLoadedPolicy.leastLoaded(candidates, after: last)!
            last = candidates[k].instance
            return RoutingChoice(index: k, scores: scores, unit: "seconds",
                                 reason: "loads unbalanced (\(maxLoad) vs \(minLoad) requests): least loaded \(candidates[k].instance)")
        }

        var best = 0
        for k in 1..<candidates.count {
            let a = candidates[k], b = candidates[best]
            if scores[k] < scores[best]
                || (scores[k] == scores[best]
                    && (a.expectedBlocks, -a.load.requests, UInt64.max - rotationDistance(a.instance, after: last))
                        > (b.expectedBlocks, -b.load.requests, UInt64.max - rotationDistance(b.instance, after: last))) {
                best = k
            }
        }
        let c = candidates[best], pr = predictions[best]
        last = c.instance
        func ms(_ s: Double) -> String {
            let v = (s * 1e4).rounded() / 10
            return "\(v) ms"
        }
        var reason = "\(c.instance): best predicted first token and added work, TTFT \(ms(pr.seconds)) (queue \(ms(pr.queue)), prefill \(ms(pr.prefill))"
        if pr.memory > 0 { reason += ", memory \(ms(pr.memory))" }
        reason += "), \(c.matchedTokens(promptTokens: request.promptTokens)) of \(request.promptTokens) tokens cached"
        if c.inFlightBlocks > c.matchedBlocks {
            reason += ", \(min(c.inFlightBlocks * c.profile.blockTokens, request.promptTokens)) being computed there"
        }
        if pr.transfer, let holder { reason += ", more from \(holder.instance)" }
        return RoutingChoice(index: best, scores: scores, unit: "seconds", reason: reason)
    }
}
