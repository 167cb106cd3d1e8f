import Foundation

/// One workload run against one configuration.
public struct PaperRun: Codable, Sendable, Equatable {
    public var configuration: String
    public var workload: WorkloadKind
    public var result: RunResult?
    public var error: String?

    public init(configuration: String, workload: WorkloadKind, result: RunResult?, error: String?) {
        self.configuration = configuration
        self.workload = workload
        self.result = result
        self.error = error
    }
}

/// Our change between two configurations beside the paper's, for one workload and metric.
public struct Improvement: Codable, Sendable, Equatable {
    public var workload: WorkloadKind
    public var comparison: String
    public var baseline: String
    public var candidate: String
    public var metric: String
    public var stat: String
    /// Percent change from baseline to candidate (negative: it went down).
    public var ours: Double?
    public var paper: Double?
}

/// Everything `bench paper` measured: `results.json`.
public struct PaperResults: Codable, Sendable, Equatable {
    public var machine: MachineInfo
    public var model: String
    public var modelPath: String?
    public var quick: Bool
    public var startedAt: String
    public var durationS: Double
    public var serveArguments: [String]
    public var configurations: [PaperConfiguration]
    public var workloads: [WorkloadPlan]
    public var runs: [PaperRun]
    public var improvements: [Improvement]
    public var notes: [String]

    public init(machine: MachineInfo, model: String, modelPath: String?, quick: Bool, startedAt: String, durationS: Double,
                serveArguments: [String], configurations: [PaperConfiguration], workloads: [WorkloadPlan], runs: [PaperRun],
                notes: [String]) {
        self.machine = machine
        self.model = model
        self.modelPath = modelPath
        self.quick = quick
        self.startedAt = startedAt
        self.durationS = durationS
        self.serveArguments = serveArguments
        self.configurations = configurations
        self.workloads = workloads
        self.runs = runs
        self.notes = notes
        improvements = PaperReport.improvements(runs: runs, compare: configurations.contains { $0.name == "compare" })
    }

    public func result(_ configuration: String, _ workload: WorkloadKind) -> RunResult? {
        runs.first { $0.configuration == configuration && $0.workload == workload }?.result
    }
}

/// `report.md` from the results.
public enum PaperReport {
    static func value(_ r: RunResult, metric: String, stat: String) -> Double {
        let s = metric == "ttft" ? r.ttftMs : r.jctMs
        return stat == "p99" ? s.p99 : s.avg
    }

    /// Our changes for every comparison, workload, metric and statistic, with the paper's
    /// figure where it reports one.
    public static func improvements(runs: [PaperRun], compare: Bool) -> [Improvement] {
        func result(_ c: String, _ w: WorkloadKind) -> RunResult? {
            runs.first { $0.configuration == c && $0.workload == w }?.result
        }
        var out: [Improvement] = []
        for w in WorkloadKind.allCases {
            for c in PaperMatrix.comparisons(compare: compare) {
                for metric in ["jct", "ttft"] {
                    for stat in ["avg", "p99"] {
                        let paper = PaperMatrix.paperFigures.first {
                            $0.workload == w && $0.comparison == c.name && $0.metric == metric && $0.stat == stat
                        }?.change
                        var ours: Double?
                        if let b = result(c.baseline, w), let k = result(c.candidate, w), b.jctMs.count > 0, k.jctMs.count > 0 {
                            ours = Statistics.change(from: value(b, metric: metric, stat: stat), to: value(k, metric: metric, stat: stat))
                        }
                        guard ours != nil || paper != nil else { continue }
                        out.append(Improvement(workload: w, comparison: c.name, baseline: c.baseline, candidate: c.candidate,
                                               metric: metric, stat: stat, ours: ours, paper: paper))
                    }
                }
            }
        }
        return out
    }

    static func ms(_ x: Double) -> String { x >= 100 ? String(format: "%.0f", x) : String(format: "%.1f", x) }
    static func pct(_ x: Double?) -> String { x.map { String(format: "%+.1f%%", $0) } ?? "–" }

    public static func markdown(_ r: PaperResults, plots: [String]) -> String {
        var s = "# MemServe benchmark: the paper's matrix\n\n"
        s += "Every number below was measured in this run by `memserve bench paper\(r.quick ? " --quick" : "")`; "
        s += "the paper's figures (Hu et al., 2024: Llama-2-13B on H800 GPUs, vLLM 0.4.0 as the baseline) are quoted beside ours.\n\n"
        s += "| | |\n| --- | --- |\n"
        s += "| machine | \(r.machine.cpu), \(r.machine.cores) cores, \(r.machine.memoryGib) GiB, \(r.machine.os) |\n"
        s += "| model | \(r.model)\(r.modelPath.map { " (`\($0)`)" } ?? "") |\n"
        s += "| commit | \(r.machine.commit ?? "unknown") |\n"
        s += "| started | \(r.startedAt), took \(String(format: "%.0f", r.durationS)) s |\n"
        if !r.serveArguments.isEmpty { s += "| extra serve arguments | `\(r.serveArguments.joined(separator: " "))` |\n" }
        s += "\n## Workloads\n\n"
        s += "| workload | requests | sessions | arrivals (sessions/s, Poisson) | length scale | max context | seed |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        for w in r.workloads {
            let sessions = r.runs.first { $0.workload == w.kind }?.result?.sessions
            s += "| \(w.kind.rawValue) | \(w.options.requests) | \(sessions.map(String.init) ?? "–") | \(w.arrival.rate.map { String(format: "%.2f", $0) } ?? "closed loop") | \(w.options.lengthScale) | \(w.options.maxContext) | \(w.options.seed) |\n"
        }
        s += "\nPrompts are English from the corpus in `Sources/LoadGen`, sized at \(String(format: "%.2f", r.workloads.first?.options.tokens.tokensPerWord ?? TokenEstimate().tokensPerWord)) tokens per word; "
        s += "the token counts below are the servers' own (`usage`). Answers have exactly `max_tokens` tokens (`ignore_eos`), greedy.\n"
        s += "\n## Configurations\n\n| name | what | serve arguments |\n| --- | --- | --- |\n"
        for c in r.configurations {
            s += "| \(c.name) | \(c.label) | \(c.endpoint.map { "external: \($0)" } ?? "`\(c.serveArguments.joined(separator: " "))`") |\n"
        }
        for w in WorkloadKind.allCases where r.workloads.contains(where: { $0.kind == w }) {
            s += "\n## \(w.rawValue)\n\n"
            s += "| configuration | ok / sent | TTFT avg ms | TTFT P99 ms | JCT avg ms | JCT P99 ms | TPOT avg ms | output tok/s | cached / prompt tokens |\n"
            s += "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
            for c in r.configurations {
                guard let run = r.runs.first(where: { $0.configuration == c.name && $0.workload == w }) else { continue }
                guard let x = run.result else {
                    s += "| \(c.name) | failed: \(run.error ?? "?") | | | | | | | |\n"
                    continue
                }
                let ok = x.requests - x.errors
                let cached = x.promptTokens > 0 ? String(format: "%d / %d (%.0f%%)", x.cachedTokens, x.promptTokens, 100 * Double(x.cachedTokens) / Double(x.promptTokens)) : "–"
                s += "| \(c.name) | \(ok) / \(x.requests + x.skipped) | \(ms(x.ttftMs.avg)) | \(ms(x.ttftMs.p99)) | \(ms(x.jctMs.avg)) | \(ms(x.jctMs.p99)) | \(ms(x.tpotMs.avg)) | \(String(format: "%.1f", x.outputTokensPerS)) | \(cached) |\n"
            }
        }
        s += "\n## Improvements beside the paper's\n\n"
        s += "Change from the baseline to the candidate (negative: lower latency). The paper's \"disaggregation\" is PD-Basic against colocated vLLM; "
        s += "its \"caching\" is MemServe's caching on top of disaggregation, which we take as PD-Caching-3 against PD-Basic.\n\n"
        s += "| workload | comparison | metric | ours | paper |\n| --- | --- | --- | ---: | ---: |\n"
        for i in r.improvements {
            s += "| \(i.workload.rawValue) | \(i.comparison) (\(i.candidate) vs \(i.baseline)) | \(i.metric.uppercased()) \(i.stat == "p99" ? "P99" : "avg") | \(pct(i.ours)) | \(pct(i.paper)) |\n"
        }
        if !plots.isEmpty {
            s += "\n## Plots\n\n" + plots.map { "![\($0)](\($0))\n" }.joined()
        }
        if !r.notes.isEmpty {
            s += "\n## Notes\n\n" + r.notes.map { "- \($0)\n" }.joined()
        }
        return s
    }
}
