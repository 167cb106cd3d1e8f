import Foundation

/// `bench paper`: every configuration of the matrix started as a `memserve serve` child
/// process in turn, every workload replayed against it over HTTP, then the report.
public struct PaperBench: Sendable {
    /// The memserve binary to start (this process's own).
    public var executable: String
    public var outputDirectory: URL
    public var quick = false
    public var seed: UInt64 = 1
    public var maxContext = 8192
    /// Instances per policy configuration (when the server has `--policy`).
    public var instances = 2
    /// Arguments given to every `serve` (e.g. `--model PATH`, `--threads N`).
    public var serveArguments: [String] = []
    public var modelPath: String?
    /// Only these configurations (names); empty: all.
    public var only: [String] = []
    public var workloadKinds: [WorkloadKind] = WorkloadKind.allCases
    /// Another server to run the same workloads against.
    public var compare: String?
    public var compareAPIKey: String?
    public var compareModel: String?
    public var log: @Sendable (String) -> Void = { _ in }

    public init(executable: String, outputDirectory: URL) {
        self.executable = executable
        self.outputDirectory = outputDirectory
    }

    /// The configurations this run will start, given what `serve --help` offers.
    public func configurations(serveHelp: String) -> [PaperConfiguration] {
        var policies = PaperMatrix.policies(inServeHelp: serveHelp)
        // The quick matrix keeps the paper's own comparison (session-based routing against the
        // global prompt trees) so that it stays within minutes.
        if quick { policies = policies.filter { PaperMatrix.quickPolicies.contains($0) } }
        var configs = PaperMatrix.configurations(policies: policies, instances: instances)
        if !only.isEmpty { configs = configs.filter { only.contains($0.name) } }
        if let compare { configs.append(PaperConfiguration(name: "compare", label: "another server", endpoint: compare)) }
        return configs
    }

    public func run() async throws -> PaperResults {
        try FileManager.default.createDirectory(at: outputDirectory, withIntermediateDirectories: true)
        let clock = ContinuousClock()
        let began = clock.now
        let startedAt = ISO8601DateFormatter().string(from: Date())
        let machine = await MachineInfo.current()
        let help = await runCommand(executable, ["serve", "--help"]) ?? ""
        var notes: [String] = []
        let policies = PaperMatrix.policies(inServeHelp: help)
        if policies.isEmpty {
            notes.append("`memserve serve --help` offers no `--policy`: the routing-policy configurations were not run.")
        } else if quick {
            notes.append("`--quick` runs \(instances) instances under \(PaperMatrix.quickPolicies.joined(separator: " and ")) routing only; the full run adds the other policies.")
        }
        let configs = configurations(serveHelp: help)
        let plans = PaperMatrix.workloads(quick: quick, maxContext: maxContext, seed: seed).filter { workloadKinds.contains($0.kind) }
        var runs: [PaperRun] = []
        var model = "unknown"
        for config in configs {
            log("== \(config.name): \(config.label)")
            var server: ServerProcess?
            let client: OpenAIClient
            do {
                if let endpoint = config.endpoint {
                    client = try OpenAIClient(endpoint: endpoint, apiKey: compareAPIKey)
                } else {
                    let args = ["serve", "--port", "0", "--max-context", String(maxContext)] + serveArguments + config.serveArguments
                    let s = try await ServerProcess.start(executable: executable, arguments: args,
                                                          log: outputDirectory.appendingPathComponent("server-\(config.name).log"))
                    server = s
                    log("   started pid \(s.pid) at \(s.url): \(args.joined(separator: " "))")
                    client = try OpenAIClient(endpoint: s.url)
                }
            } catch {
                log("   could not start: \(error)")
                runs += plans.map { PaperRun(configuration: config.name, workload: $0.kind, result: nil, error: "\(error)") }
                continue
            }
            if await !client.healthy() {
                runs += plans.map { PaperRun(configuration: config.name, workload: $0.kind, result: nil, error: "/health did not answer 200") }
            } else {
                let named = config.endpoint == nil ? nil : compareModel
                await warmUp(client, model: named)
                for plan in plans {
                    runs.append(await replay(plan, config: config, client: client, model: named))
                    if config.endpoint == nil, let m = runs.last?.result?.model { model = m }
                }
            }
            await client.shutdown()
            if let server {
                let status = await server.stop()
                log("   stopped (exit status \(status.map(String.init) ?? "?"))")
            }
        }
        return PaperResults(machine: machine, model: model, modelPath: modelPath, quick: quick, startedAt: startedAt,
                            durationS: Double((clock.now - began).components.seconds), serveArguments: serveArguments,
                            configurations: configs, workloads: plans, runs: runs, notes: notes)
    }

    /// One short request first, so that page faults of the weights and lazy set-up are not
    /// charged to the first measured request.
    func warmUp(_ client: OpenAIClient, model: String?) async {
        var c = ReplayConfiguration(endpoint: client.base, kind: .react)
        c.model = model
        c.maxContext = maxContext
        guard let (name, _) = try? await Replay.resolve(c, client: client) else { return }
        _ = await client.stream(.text("Warm-up: the quick brown fox"), model: name, maxTokens: 4, settings: RequestSettings())
    }

    func replay(_ plan: WorkloadPlan, config: PaperConfiguration, client: OpenAIClient, model: String?) async -> PaperRun {
        var c = ReplayConfiguration(endpoint: client.base, kind: plan.kind)
        c.model = model
        c.seed = plan.options.seed
        c.requests = plan.options.requests
        c.maxContext = plan.options.maxContext
        c.lengthScale = plan.options.lengthScale
        c.tokens = plan.options.tokens
        c.arrival = plan.arrival
        do {
            let r = try await Replay.run(c, client: client, observer: ProgressReporter(label: "   \(plan.kind.rawValue)"))
            log("   \(plan.kind.rawValue): \(r.requests - r.errors)/\(r.requests) ok, TTFT avg \(PaperReport.ms(r.ttftMs.avg)) ms, JCT avg \(PaperReport.ms(r.jctMs.avg)) ms, \(r.durationS.rounded()) s" +
                (r.firstError.map { "; first error: \($0)" } ?? ""))
            return PaperRun(configuration: config.name, workload: plan.kind, result: r, error: nil)
        } catch {
            log("   \(plan.kind.rawValue): failed: \(error)")
            return PaperRun(configuration: config.name, workload: plan.kind, result: nil, error: "\(error)")
        }
    }

    /// Writes `results.json`, draws the plots with `script` when matplotlib is there, and
    /// writes `report.md`; returns the report's path and a message about the plots.
    public func write(_ results: PaperResults, plotScript: String?) async throws -> (report: URL, plots: String) {
        let json = outputDirectory.appendingPathComponent("results.json")
        try LoadGenJSON.encoder().encode(results).write(to: json)
        var plots: [String] = []
        var message: String
        if let plotScript {
            if await runCommand("/usr/bin/env", ["python3", "-c", "import matplotlib"]) == nil {
                message = "plots skipped: matplotlib is missing (pip install matplotlib, or bash scripts/setup.sh --tests), then run python3 \(plotScript) \(json.path) \(outputDirectory.path)"
            } else if let out = await runCommand("/usr/bin/env", ["python3", plotScript, json.path, outputDirectory.path]) {
                plots = out.split(separator: "\n").map(String.init).filter { $0.hasSuffix(".png") }
                message = "plots: " + plots.joined(separator: ", ")
            } else {
                message = "plots failed: python3 \(plotScript) \(json.path) \(outputDirectory.path) did not succeed"
            }
        } else {
            message = "plots skipped: scripts/plot_bench.py not found (run from the repository, or pass --plot-script)"
        }
        let report = outputDirectory.appendingPathComponent("report.md")
        try Data(PaperReport.markdown(results, plots: plots).utf8).write(to: report)
        return (report, message)
    }
}
