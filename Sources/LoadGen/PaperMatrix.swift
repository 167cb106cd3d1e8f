/// One system under test in `bench paper`: memserve started with `serveArguments`, or another
/// server already running at `endpoint` (`--compare`).
public struct PaperConfiguration: Codable, Sendable, Equatable {
    public var name: String
    public var label: String
    public var serveArguments: [String]
    public var endpoint: String?

    public init(name: String, label: String, serveArguments: [String] = [], endpoint: String? = nil) {
        self.name = name
        self.label = label
        self.serveArguments = serveArguments
        self.endpoint = endpoint
    }
}

/// One workload of the matrix, with how it arrives.
public struct WorkloadPlan: Codable, Sendable, Equatable {
    public var kind: WorkloadKind
    public var options: WorkloadOptions
    public var arrival: ArrivalOptions

    public init(kind: WorkloadKind, options: WorkloadOptions, arrival: ArrivalOptions) {
        self.kind = kind
        self.options = options
        self.arrival = arrival
    }
}

/// A reduction the paper reports, to be set beside ours.
public struct PaperFigure: Codable, Sendable, Equatable {
    public var workload: WorkloadKind
    /// "disaggregation" (PD-Basic vs colocated without caching) or "caching" (caching on top
    /// of disaggregation vs PD-Basic).
    public var comparison: String
    public var metric: String
    public var stat: String
    /// Percent change (negative: lower is better and it went down).
    public var change: Double
}

/// The paper's matrix: configurations, workloads and the figures to compare with.
public enum PaperMatrix {
    public static let baseline = "colocated-nocache"

    /// Colocated without and with caching, PD-Basic and PD-Caching-1/2/3, and, when the server
    /// has a global scheduler (`policies`), `instances` colocated instances under each policy.
    public static func configurations(policies: [String] = [], instances: Int = 2) -> [PaperConfiguration] {
        var out = [
            PaperConfiguration(name: baseline, label: "colocated, no caching (baseline)", serveArguments: ["--no-prefix-caching"]),
            PaperConfiguration(name: "colocated", label: "colocated, caching", serveArguments: []),
            PaperConfiguration(name: "pd-basic", label: "PD-Basic", serveArguments: ["--prefill", "1", "--decode", "1", "--pd-mode", "basic"]),
        ]
        for k in 1...3 {
            out.append(PaperConfiguration(name: "pd-caching-\(k)", label: "PD-Caching-\(k)",
                                          serveArguments: ["--prefill", "1", "--decode", "1", "--pd-mode", "caching-\(k)"]))
        }
        for p in policies {
            out.append(PaperConfiguration(name: "\(instances)x-\(p)", label: "\(instances) instances, \(p) routing",
                                          serveArguments: ["--instances", String(instances), "--policy", p]))
        }
        return out
    }

    /// The policies `--quick` compares.
    public static let quickPolicies = ["session", "prompt-tree"]

    /// The routing policies `memserve serve --help` offers: none before the global scheduler
    /// exists.
    public static func policies(inServeHelp help: String) -> [String] {
        guard help.contains("--policy"), help.contains("--instances") else { return [] }
        return ["round-robin", "least-loaded", "session", "prompt-tree"]
    }

    /// The workloads: `quick` sizes them so that the whole matrix runs in minutes on two cores.
    public static func workloads(quick: Bool, maxContext: Int, seed: UInt64) -> [WorkloadPlan] {
        func plan(_ kind: WorkloadKind, requests: Int, scale: Double, rate: Double) -> WorkloadPlan {
            WorkloadPlan(kind: kind, options: WorkloadOptions(seed: seed, requests: requests, maxContext: maxContext, lengthScale: scale),
                         arrival: ArrivalOptions(rate: rate, concurrency: nil, seed: seed))
        }
        if quick {
            return [
                plan(.sharegpt, requests: 16, scale: 0.12, rate: 0.5),
                plan(.loogle, requests: 6, scale: 0.25, rate: 0.2),
                plan(.react, requests: 12, scale: 0.5, rate: 0.5),
            ]
        }
        return [
            plan(.sharegpt, requests: 64, scale: 0.25, rate: 0.25),
            plan(.loogle, requests: 32, scale: 0.5, rate: 0.1),
            plan(.react, requests: 48, scale: 1, rate: 0.25),
        ]
    }

    /// The MemServe paper's reductions (Hu et al., 2024, §6; see docs in ../shared).
    public static let paperFigures: [PaperFigure] = [
        .init(workload: .sharegpt, comparison: "disaggregation", metric: "jct", stat: "avg", change: -30),
        .init(workload: .sharegpt, comparison: "disaggregation", metric: "jct", stat: "p99", change: -42),
        .init(workload: .sharegpt, comparison: "caching", metric: "jct", stat: "avg", change: -17),
        .init(workload: .sharegpt, comparison: "caching", metric: "jct", stat: "p99", change: -29),
        .init(workload: .sharegpt, comparison: "caching", metric: "ttft", stat: "avg", change: -58),
        .init(workload: .sharegpt, comparison: "caching", metric: "ttft", stat: "p99", change: -45),
        .init(workload: .loogle, comparison: "disaggregation", metric: "jct", stat: "avg", change: -10.3),
        .init(workload: .loogle, comparison: "disaggregation", metric: "jct", stat: "p99", change: -10.8),
        .init(workload: .loogle, comparison: "caching", metric: "jct", stat: "avg", change: -26.9),
        .init(workload: .loogle, comparison: "caching", metric: "jct", stat: "p99", change: -22.5),
        .init(workload: .loogle, comparison: "caching", metric: "ttft", stat: "avg", change: -56.2),
        .init(workload: .loogle, comparison: "caching", metric: "ttft", stat: "p99", change: -45.2),
        .init(workload: .react, comparison: "caching", metric: "jct", stat: "avg", change: -26.7),
        .init(workload: .react, comparison: "caching", metric: "jct", stat: "p99", change: -21.4),
        .init(workload: .react, comparison: "caching", metric: "ttft", stat: "avg", change: -78.5),
        .init(workload: .react, comparison: "caching", metric: "ttft", stat: "p99", change: -84.9),
    ]

    /// The pairs our improvements are computed between: (name, baseline, candidate).
    public static func comparisons(compare: Bool) -> [(name: String, baseline: String, candidate: String)] {
        var out = [
            (name: "disaggregation", baseline: baseline, candidate: "pd-basic"),
            (name: "caching", baseline: "pd-basic", candidate: "pd-caching-3"),
            (name: "colocated caching", baseline: baseline, candidate: "colocated"),
        ]
        if compare { out.append((name: "memserve vs compare", baseline: "compare", candidate: "colocated")) }
        return out
    }
}
