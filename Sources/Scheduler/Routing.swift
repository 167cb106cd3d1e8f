/// What a policy knows of a request: its size and key, never its tokens.
public struct RoutingRequest: Sendable, Hashable {
    /// Prompt tokens.
    public var promptTokens: Int
    /// Whole blocks of the prompt: the length of its hash chain.
    public var promptBlocks: Int
    /// The kind of instance wanted.
    public var kind: InstanceKind
    /// The affinity key (the request's `user` field or a session header), if any.
    public var session: String?
    /// The caller's monotonic clock, nanoseconds.
    public var now: UInt64

    public init(promptTokens: Int, promptBlocks: Int, kind: InstanceKind = .colocated, session: String? = nil, now: UInt64 = 0) {
        self.promptTokens = promptTokens
        self.promptBlocks = promptBlocks
        self.kind = kind
        self.session = session
        self.now = now
    }
}

/// One instance a policy may choose, with what the tree says it caches of the prompt.
public struct Candidate: Sendable, Hashable {
    public var instance: InstanceID
    /// Its load, including requests routed to it since its last report.
    public var load: InstanceLoad
    public var profile: InstanceProfile
    /// Leading blocks of the prompt it caches.
    public var matchedBlocks: Int
    /// Of those, blocks in its hot tier.
    public var hotBlocks: Int
    /// Leading blocks of the prompt that requests routed there earlier are computing: not
    /// cached yet, but by the time this request's prefill runs behind them.
    public var inFlightBlocks: Int

    public init(instance: InstanceID, load: InstanceLoad, profile: InstanceProfile, matchedBlocks: Int = 0, hotBlocks: Int = 0,
                inFlightBlocks: Int = 0) {
        self.instance = instance
        self.load = load
        self.profile = profile
        self.matchedBlocks = matchedBlocks
        self.hotBlocks = hotBlocks
        self.inFlightBlocks = inFlightBlocks
    }

    /// Leading blocks it will have cached when this request's prefill starts there: cached
    /// now, or being computed by requests ahead of it.
    public var expectedBlocks: Int { max(matchedBlocks, inFlightBlocks) }

    /// Prompt tokens its cache covers.
    public func matchedTokens(promptTokens: Int) -> Int { min(matchedBlocks * profile.blockTokens, max(0, promptTokens)) }

    /// Prompt tokens its hot tier covers.
    public func hotTokens(promptTokens: Int) -> Int { min(hotBlocks * profile.blockTokens, max(0, promptTokens)) }
}

/// A policy's answer: which candidate, every candidate's score, and why.
public struct RoutingChoice: Sendable, Hashable {
    /// Index into the candidates; nil when there were none.
    public var index: Int?
    /// One per candidate, lower is better, in ``unit``.
    public var scores: [Double]
    /// What the scores measure (e.g. "seconds", "requests").
    public var unit: String
    /// Why this candidate, in words.
    public var reason: String

    public init(index: Int?, scores: [Double], unit: String, reason: String) {
        self.index = index
        self.scores = scores
        self.unit = unit
        self.reason = reason
    }
}

/// A way of picking an instance for a request. Policies keep their own state (a rotation, session
/// homes), hence `mutating`.
public protocol RoutingPolicy {
    /// The name `--policy` selects it by.
    var name: PolicyName { get }
    /// Picks one of `candidates` (all of the requested kind, in identifier order).
    mutating func choose(_ request: RoutingRequest, candidates: [Candidate]) -> RoutingChoice
}

/// The selectable policies.
public enum PolicyName: String, CaseIterable, Sendable, Hashable, Codable, CustomStringConvertible {
    case roundRobin = "round-robin"
    case leastLoaded = "least-loaded"
    case session
    case promptTree = "prompt-tree"

    public var description: String { rawValue }

    /// A fresh policy of this name. The prompt-tree policy weighs transfers with `costModel`.
    public func makePolicy(costModel: CostModel = CostModel(),
                           promptTree: PromptTreePolicy.Configuration = .init()) -> any RoutingPolicy {
        switch self {
        case .roundRobin: RoundRobinPolicy()
        case .leastLoaded: LeastLoadedPolicy()
        case .session: SessionPolicy()
        case .promptTree: PromptTreePolicy(configuration: promptTree, costModel: costModel)
        }
    }
}

/// One candidate in a decision, as the debug endpoint shows it.
public struct CandidateScore: Sendable, Hashable, Codable {
    public var instance: InstanceID
    /// Prompt tokens it caches.
    public var matchedTokens: Int
    /// Of those, tokens in its hot tier.
    public var hotTokens: Int
    /// Prompt tokens that requests routed there earlier are computing (see ``Candidate/inFlightBlocks``).
    public var inFlightTokens: Int
    public var load: InstanceLoad
    /// The policy's score (lower is better, in the decision's `scoreUnit`).
    public var score: Double

    public init(instance: InstanceID, matchedTokens: Int, hotTokens: Int, inFlightTokens: Int = 0, load: InstanceLoad, score: Double) {
        self.instance = instance
        self.matchedTokens = matchedTokens
        self.hotTokens = hotTokens
        self.inFlightTokens = inFlightTokens
        self.load = load
        self.score = score.isFinite ? score : .greatestFiniteMagnitude
    }

    enum CodingKeys: String, CodingKey {
        case instance
        case matchedTokens = "matched_tokens"
        case hotTokens = "hot_tokens"
        case inFlightTokens = "in_flight_tokens"
        case load, score
    }
}

/// Where a request goes and why. Encodes with snake_case keys: `chosen` (an instance number or
/// null), `policy`, `kind`, `prompt_tokens`, `prompt_blocks`, `score_unit`, `candidates`
/// (`instance`, `matched_tokens`, `hot_tokens`, `in_flight_tokens`, `load`, `score`), `reason`, `transfer` (null or a
/// ``TransferOrder``).
public struct RoutingDecision: Sendable, Hashable, Codable {
    /// The instance chosen; nil when no instance of the kind is known.
    public var chosen: InstanceID?
    public var policy: PolicyName
    public var kind: InstanceKind
    public var promptTokens: Int
    public var promptBlocks: Int
    /// What candidates' scores measure.
    public var scoreUnit: String
    /// Every candidate, in identifier order.
    public var candidates: [CandidateScore]
    public var reason: String
    /// Blocks to move to the chosen instance before its prefill, when cheaper than recomputing.
    public var transfer: TransferOrder?
    /// Prefill tokens added to the chosen instance's pending load, until the request starts
    /// (``GlobalScheduler/started(_:tokens:running:)``) or the instance reports its load.
    public var chargedTokens: Int = 0

    public init(chosen: InstanceID?, policy: PolicyName, kind: InstanceKind, promptTokens: Int, promptBlocks: Int,
                scoreUnit: String, candidates: [CandidateScore], reason: String, transfer: TransferOrder?) {
        self.chosen = chosen
        self.policy = policy
        self.kind = kind
        self.promptTokens = promptTokens
        self.promptBlocks = promptBlocks
        self.scoreUnit = scoreUnit
        self.candidates = candidates
        self.reason = reason
        self.transfer = transfer
    }

    /// The chosen candidate's row.
    public var chosenScore: CandidateScore? { candidates.first { $0.instance == chosen } }

    enum CodingKeys: String, CodingKey {
        case chosen, policy, kind
        case promptTokens = "prompt_tokens"
        case promptBlocks = "prompt_blocks"
        case scoreUnit = "score_unit"
        case candidates, reason, transfer
        case chargedTokens = "charged_tokens"
    }
}
