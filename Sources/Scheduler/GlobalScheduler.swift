import MemPool

/// The paper's global scheduler: membership, loads and the event feeds of every instance, one
/// ``GlobalPromptTree`` per ``InstanceKind``, a ``RoutingPolicy`` and the ``CostModel``.
///
/// Data only: time comes in as `now`, nanoseconds of the caller's monotonic clock. Not
/// thread-safe and not `Sendable`: the caller owns it (in a server, behind a `Mutex`).
public final class GlobalScheduler {
    struct Member {
        var id: InstanceID
        var kind: InstanceKind
        var profile: InstanceProfile
        var load = InstanceLoad()
        var feed = CacheFeed()
        var lastHeard: UInt64
        /// Requests routed here since its last load report, and their prefill tokens: load the
        /// report does not show yet, so a burst does not all land on one instance.
        var pendingRequests = 0
        var pendingTokens = 0
        /// Requests that started, and requests that ended, since its last load report, as the
        /// caller saw them: the report does not show them yet either.
        var startedSinceReport = 0
        var finishedSinceReport = 0
        /// Index in its kind's candidate list.
        var position = 0

        var effectiveLoad: InstanceLoad {
            var l = load
            l.waiting += pendingRequests
            l.queuedPrefillTokens += pendingTokens
            l.running = max(0, l.running + startedSinceReport - finishedSinceReport)
            return l
        }
    }

    /// Members in identifier order.
    var members: [Member] = []
    /// Raw identifier → index in `members`, or -1 once it left.
    private var indexOfRaw: [Int32] = []
    private var trees: [GlobalPromptTree]
    /// Prompts routed and not started yet, per instance.
    private var inFlight = InFlightPrefixes()
    /// The policy deciding routes.
    public var policy: any RoutingPolicy
    /// Decides transfers for every policy's choice.
    public var costModel: CostModel
    /// Per kind, its members as candidates in identifier order, kept current (load with pending
    /// requests) so a route only patches in the matches.
    private var candidates: [[Candidate]] = InstanceKind.allCases.map { _ in [] }

    /// A scheduler with `policy`; the prompt-tree policy shares `costModel`.
    public init(policy: PolicyName = .promptTree, costModel: CostModel = CostModel(),
                promptTree: PromptTreePolicy.Configuration = .init(), expectedBlocks: Int = 0) {
        self.policy = policy.makePolicy(costModel: costModel, promptTree: promptTree)
        self.costModel = costModel
        trees = InstanceKind.allCases.map { _ in GlobalPromptTree(expectedBlocks: expectedBlocks) }
    }

    /// A scheduler with a policy built elsewhere.
    public init(policy: any RoutingPolicy, costModel: CostModel = CostModel()) {
        self.policy = policy
        self.costModel = costModel
        trees = InstanceKind.allCases.map { _ in GlobalPromptTree() }
    }

    /// The prompt tree of a kind.
    public func tree(_ kind: InstanceKind) -> GlobalPromptTree { trees[Self.kindIndex(kind)] }

    @inline(__always)
    static func kindIndex(_ k: InstanceKind) -> Int {
        switch k {
        case .prefill: 0
        case .decode: 1
        case .colocated: 2
        }
    }

    @inline(__always)
    func index(_ id: InstanceID) -> Int? {
        let r = Int(id.rawValue)
        guard r < indexOfRaw.count, indexOfRaw[r] >= 0 else { return nil }
        return Int(indexOfRaw[r])
    }

    // MARK: - Membership

    /// Adds an instance. Its feed awaits a snapshot (``resync(_:entries:seq:now:)``).
    public func join(kind: InstanceKind, profile: InstanceProfile, now: UInt64 = 0) -> InstanceID {
        let id = InstanceID(rawValue: UInt32(indexOfRaw.count))
        let kk = Self.kindIndex(kind)
        indexOfRaw.append(Int32(members.count))
        var m = Member(id: id, kind: kind, profile: profile, lastHeard: now)
        m.position = candidates[kk].count
        candidates[kk].append(Candidate(instance: id, load: m.effectiveLoad, profile: profile))
        members.append(m)
        return id
    }

    /// Removes an instance and its tree entries. Session homes on it re-home at their next request.
    public func leave(_ id: InstanceID) {
        guard let k = index(id) else { return }
        let kind = members[k].kind
        tree(kind).remove(id)
        inFlight.removeAll(on: id)
        candidates[Self.kindIndex(kind)].remove(at: members[k].position)
        members.remove(at: k)
        indexOfRaw[Int(id.rawValue)] = -1
        for j in k..<members.count {
            indexOfRaw[Int(members[j].id.rawValue)] = Int32(j)
            if members[j].kind == kind { members[j].position -= 1 }
        }
    }

    /// Members, in identifier order.
    public var instances: [InstanceID] { members.map(\.id) }

    /// The kind of a member.
    public func kind(of id: InstanceID) -> InstanceKind? { index(id).map { members[$0].kind } }

    /// A member's last reported load.
    public func load(of id: InstanceID) -> InstanceLoad? { index(id).map { members[$0].load } }

    /// A member's profile.
    public func profile(of id: InstanceID) -> InstanceProfile? { index(id).map { members[$0].profile } }

    /// A member's feed state.
    public func feed(of id: InstanceID) -> CacheFeed? { index(id).map { members[$0].feed } }

    // MARK: - Feeding

    /// Records a load report; requests routed before it are taken as included.
    public func updateLoad(_ id: InstanceID, _ load: InstanceLoad, now: UInt64) {
        guard let k = index(id) else { return }
        members[k].load = load
        members[k].pendingRequests = 0
        members[k].pendingTokens = 0
        members[k].startedSinceReport = 0
        members[k].finishedSinceReport = 0
        members[k].lastHeard = max(members[k].lastHeard, now)
        refreshCandidate(k)
    }

    private func refreshCandidate(_ k: Int) {
        candidates[Self.kindIndex(members[k].kind)][members[k].position].load = members[k].effectiveLoad
    }

    /// Takes event `seq` of an instance's pool. On ``FeedVerdict/gap`` the caller fetches a
    /// snapshot and calls ``resync(_:entries:seq:now:)``; events are ignored until then.
    @discardableResult
    public func ingest(_ event: MemPoolEvent, seq: UInt64, from id: InstanceID, now: UInt64) -> FeedVerdict {
        guard let k = index(id) else { return .unknownInstance }
        members[k].lastHeard = max(members[k].lastHeard, now)
        let verdict = members[k].feed.accept(seq: seq)
        if verdict == .apply { trees[Self.kindIndex(members[k].kind)].apply(event, from: id) }
        return verdict
    }

    /// Replaces what is known of an instance's cache by a snapshot's entries
    /// (``CacheEntry/entries(of:)``) that include its events through `seq`.
    public func resync(_ id: InstanceID, entries: [CacheEntry], seq: UInt64, now: UInt64) {
        guard let k = index(id) else { return }
        trees[Self.kindIndex(members[k].kind)].replace(id, with: entries)
        members[k].feed.reset(to: seq)
        members[k].lastHeard = max(members[k].lastHeard, now)
    }

    /// Drops the tree entries of instances not heard from (no event, snapshot or load report)
    /// for `ttl`, and makes their feeds await a snapshot. They stay members (and candidates, on
    /// load alone) until ``leave(_:)``. Returns those that expired now.
    @discardableResult
    public func expire(now: UInt64, ttl: Duration) -> [InstanceID] {
        let c = ttl.components
        let ttlNs = UInt64(max(0, c.seconds)) &* 1_000_000_000 &+ UInt64(max(0, c.attoseconds / 1_000_000_000))
        var out: [InstanceID] = []
        for k in members.indices {
            let m = members[k]
            let t = tree(m.kind)
            guard now >= m.lastHeard, now - m.lastHeard > ttlNs, !m.feed.needsSnapshot || t.blocks(of: m.id) > 0 else { continue }
            t.remove(m.id)
            members[k].feed.invalidate()
            out.append(m.id)
        }
        return out
    }

    // MARK: - Routing

    /// Routes a request of `promptTokens` tokens whose whole blocks hash to `hashes`
    /// (``MemPool/PrefixHash/chain(_:blockTokens:)``, computed once by the caller) to an
    /// instance of `kind`, with the configured policy, and orders a transfer when the cost model
    /// says moving a better holder's blocks beats recomputing them. The chosen instance's pending
    /// load grows until its next report, and the prompt counts as being computed there until
    /// ``computed(_:hashes:)``; `record: false` is a dry run that leaves both alone.
    /// `excluding` names instances that must not be chosen now (their link is down, or the
    /// request already failed there).
    public func route(hashes: [PrefixHash], promptTokens: Int, kind: InstanceKind, session: String? = nil,
                      now: UInt64, excluding: Set<InstanceID> = [], record: Bool = true) -> RoutingDecision {
        let request = RoutingRequest(promptTokens: promptTokens, promptBlocks: hashes.count, kind: kind, session: session, now: now)
        let kk = Self.kindIndex(kind)
        let hits = trees[kk].match(hashes)
        for h in hits { if let k = index(h.instance) { setMatch(kk, members[k].position, h.blocks, h.hotBlocks) } }
        var computing: [Int] = []
        inFlight.match(hashes) { id, blocks in
            guard let k = index(id), members[k].kind == kind else { return }
            let position = members[k].position
            if candidates[kk][position].inFlightBlocks == 0 { computing.append(position) }
            candidates[kk][position].inFlightBlocks = blocks
        }
        let pool = excluding.isEmpty ? candidates[kk] : candidates[kk].filter { !excluding.contains($0.instance) }
        let (decision, pending) = evaluate(request, pool)
        for h in hits { if let k = index(h.instance) { setMatch(kk, members[k].position, 0, 0) } }
        for position in computing { candidates[kk][position].inFlightBlocks = 0 }
        if record, let pending {
            addPending(pending.id, tokens: pending.tokens)
            inFlight.add(hashes, on: pending.id)
        }
        return decision
    }

    @inline(__always)
    private func setMatch(_ kk: Int, _ position: Int, _ blocks: Int, _ hot: Int) {
        candidates[kk][position].matchedBlocks = blocks
        candidates[kk][position].hotBlocks = hot
    }

    /// The request routed to `id` with `hashes` produced its first output or failed before
    /// it: its prompt is in the instance's tree (or never will be), so it stops counting as
    /// being computed there. Call once per ``route(hashes:promptTokens:kind:session:now:excluding:)``
    /// that chose `id`.
    public func computed(_ id: InstanceID, hashes: [PrefixHash]) {
        guard index(id) != nil else { return }
        inFlight.remove(hashes, on: id)
    }

    /// (prefix, instance) pairs being computed, for inspection and tests.
    public var inFlightEntries: Int { inFlight.entries }

    /// The decision for given candidates (what ``route(hashes:promptTokens:kind:session:now:)``
    /// does after matching), updating the chosen member's pending load.
    public func decide(_ request: RoutingRequest, _ candidates: [Candidate]) -> RoutingDecision {
        let (decision, pending) = evaluate(request, candidates)
        if let pending { addPending(pending.id, tokens: pending.tokens) }
        return decision
    }

    /// A request routed to `id` with ``RoutingDecision/chargedTokens`` `tokens` produced its first
    /// output, or failed before it: its prefill is no longer ahead of the requests routed next.
    /// `running` says whether it now runs there (false when it failed).
    public func started(_ id: InstanceID, tokens: Int, running: Bool = true) {
        guard let k = index(id) else { return }
        members[k].pendingRequests = max(0, members[k].pendingRequests - 1)
        members[k].pendingTokens = max(0, members[k].pendingTokens - tokens)
        if running { members[k].startedSinceReport += 1 }
        refreshCandidate(k)
    }

    /// A request that ``started(_:tokens:running:)`` on `id` ended: until the next report it no
    /// longer counts as running there, so the next request of a conversation finds its holder idle.
    public func finished(_ id: InstanceID) {
        guard let k = index(id) else { return }
        if members[k].startedSinceReport > 0 {
            members[k].startedSinceReport -= 1
        } else {
            members[k].finishedSinceReport += 1
        }
        refreshCandidate(k)
    }

    private func addPending(_ id: InstanceID, tokens: Int) {
        guard let k = index(id) else { return }
        members[k].pendingRequests += 1
        members[k].pendingTokens += tokens
        refreshCandidate(k)
    }

    /// The policy's choice and the cost model's order, and the prefill tokens the chosen
    /// instance is left with.
    private func evaluate(_ request: RoutingRequest, _ candidates: [Candidate]) -> (RoutingDecision, (id: InstanceID, tokens: Int)?) {
        let choice = policy.choose(request, candidates: candidates)
        var scores: [CandidateScore] = []
        scores.reserveCapacity(candidates.count)
        for (k, c) in candidates.enumerated() {
            scores.append(CandidateScore(instance: c.instance, matchedTokens: c.matchedTokens(promptTokens: request.promptTokens),
                                         hotTokens: c.hotTokens(promptTokens: request.promptTokens),
                                         inFlightTokens: min(c.inFlightBlocks * c.profile.blockTokens, max(0, request.promptTokens)), load: c.load,
                                         score: k < choice.scores.count ? choice.scores[k] : 0))
        }
        var decision = RoutingDecision(chosen: nil, policy: policy.name, kind: request.kind, promptTokens: request.promptTokens,
                                       promptBlocks: request.promptBlocks, scoreUnit: choice.unit, candidates: scores,
                                       reason: choice.reason, transfer: nil)
        guard let i = choice.index, candidates.indices.contains(i) else { return (decision, nil) }
        let chosen = candidates[i]
        decision.chosen = chosen.instance
        var cachedBlocks = chosen.expectedBlocks
        if let h = CostModel.bestHolder(candidates),
           let order = costModel.order(promptTokens: request.promptTokens, promptBlocks: request.promptBlocks,
                                       destination: chosen, source: candidates[h]) {
            decision.transfer = order
            cachedBlocks = order.toBlock
            decision.reason += "; transfer blocks \(order.fromBlock)..<\(order.toBlock) from \(order.source)"
        }
        let cached = CostModel.usableCachedTokens(cachedBlocks * chosen.profile.blockTokens, promptTokens: request.promptTokens)
        decision.chargedTokens = max(0, request.promptTokens - cached)
        return (decision, (chosen.instance, decision.chargedTokens))
    }

    // MARK: - Inspection

    /// Tree sizes per instance and per kind, for a debug endpoint.
    public var treeSizes: TreeSizes {
        TreeSizes(
            instances: members.map { m in
                let t = tree(m.kind)
                return TreeSizes.Instance(instance: m.id, kind: m.kind, blocks: t.blocks(of: m.id), hotBlocks: t.hotBlocks(of: m.id),
                                          lastSeq: m.feed.lastSeq, lastHeardNs: m.lastHeard)
            },
            kinds: InstanceKind.allCases.map { k in
                let t = tree(k)
                return TreeSizes.Kind(kind: k, blocks: t.blockCount, holders: t.holderCount, bytes: t.approximateBytes,
                                      mismatches: t.mismatches)
            })
    }
}

/// The sizes of the global prompt trees. Encodes with snake_case keys.
public struct TreeSizes: Sendable, Hashable, Codable {
    public struct Instance: Sendable, Hashable, Codable {
        public var instance: InstanceID
        public var kind: InstanceKind
        /// Blocks it caches, by the tree.
        public var blocks: Int
        public var hotBlocks: Int
        /// The last event applied; nil while a snapshot is awaited.
        public var lastSeq: UInt64?
        public var lastHeardNs: UInt64

        enum CodingKeys: String, CodingKey {
            case instance, kind, blocks
            case hotBlocks = "hot_blocks"
            case lastSeq = "last_seq"
            case lastHeardNs = "last_heard_ns"
        }
    }

    public struct Kind: Sendable, Hashable, Codable {
        public var kind: InstanceKind
        /// Distinct cached block-prefixes.
        public var blocks: Int
        /// (block, holder) pairs.
        public var holders: Int
        /// Bytes the tree reserves.
        public var bytes: Int
        /// Events that did not fit the tree (see ``GlobalPromptTree/mismatches``).
        public var mismatches: Int
    }

    public var instances: [Instance]
    public var kinds: [Kind]
}
