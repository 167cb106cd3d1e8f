import ArgumentParser
import Foundation
import LoadGen

struct BenchPaperCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "paper",
        abstract: "The MemServe paper's matrix: every configuration started as `memserve serve`, every workload replayed over HTTP; report.md, results.json and plots.",
        discussion: """
            Configurations: colocated without caching (the baseline), colocated with caching, \
            PD-Basic, PD-Caching-1/2/3, and, when `serve --help` lists --policy, several \
            instances under each routing policy. Workloads: sharegpt, loogle, react.
            """)

    @Flag(help: "Small request counts and lengths: the whole matrix in minutes on two cores.")
    var quick = false

    @Option(help: "Directory for report.md, results.json, the plots and the servers' logs.")
    var out = "bench-out/paper"

    @Option(help: "Also run the workloads against this OpenAI-compatible server (its root or /v1 URL).")
    var compare: String?

    @Option(name: .customLong("compare-model"), help: "Model name to send to --compare (default: its first /v1/models entry).")
    var compareModel: String?

    @Option(name: .customLong("compare-api-key"), help: "Bearer token for --compare.")
    var compareAPIKey: String?

    @Option(help: "GGUF model for the servers (default: theirs).")
    var model: String?

    @Option(name: .customLong("max-context"), help: "--max-context of the servers, and the context workloads are sized for.")
    var maxContext = 8192

    @Option(help: "Seed of the workloads and arrivals.")
    var seed: UInt64 = 1

    @Option(help: "Instances of each routing-policy configuration.")
    var instances = 2

    @Option(name: .customLong("only"), help: "Run only this configuration (repeatable), e.g. colocated.")
    var only: [String] = []

    @Option(name: .customLong("workload"), help: "Run only this workload (repeatable).")
    var workloads: [WorkloadKind] = []

    @Option(name: .customLong("serve-arg"), parsing: .unconditionalSingleValue, help: "Pass this argument to every `serve` (repeatable), e.g. --serve-arg=--threads --serve-arg=2.")
    var serveArgs: [String] = []

    @Option(name: .customLong("plot-script"), help: "The plotting script (default: scripts/plot_bench.py of the repository).")
    var plotScript: String?

    func validate() throws {
        if maxContext < 512 { throw ValidationError("--max-context must be at least 512") }
        if instances < 2 { throw ValidationError("--instances must be at least 2") }
    }

    func run() async throws {
        let exe = Self.executablePath()
        var bench = PaperBench(executable: exe, outputDirectory: URL(fileURLWithPath: out))
        bench.quick = quick
        bench.seed = seed
        bench.maxContext = maxContext
        bench.instances = instances
        bench.serveArguments = (model.map { ["--model", $0] } ?? []) + serveArgs
        bench.modelPath = model
        bench.only = only
        if !workloads.isEmpty { bench.workloadKinds = workloads }
        bench.compare = compare
        bench.compareModel = compareModel
        bench.compareAPIKey = compareAPIKey
        bench.log = { FileHandle.standardError.write(Data("bench: \($0)\n".utf8)) }
        let results = try await bench.run()
        let (report, plots) = try await bench.write(results, plotScript: plotScript ?? Self.findPlotScript(executable: exe))
        FileHandle.standardError.write(Data("bench: \(plots)\n".utf8))
        Output.write(Self.summary(results) + "report: \(report.path)\n")
    }

    /// This binary, so that the servers are the same build.
    static func executablePath() -> String {
        if let p = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return p }
        return URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
    }

    /// scripts/plot_bench.py in the working directory or above the binary (.build/release/memserve).
    static func findPlotScript(executable: String) -> String? {
        var candidates = [FileManager.default.currentDirectoryPath + "/scripts/plot_bench.py"]
        var dir = URL(fileURLWithPath: executable).deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(dir.appendingPathComponent("scripts/plot_bench.py").path)
            dir = dir.deletingLastPathComponent()
        }
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    static func summary(_ r: PaperResults) -> String {
        var s = "configuration        workload   TTFT avg/p99 ms       JCT avg/p99 ms        ok/sent\n"
        for c in r.configurations {
            for w in WorkloadKind.allCases {
                guard let run = r.runs.first(where: { $0.configuration == c.name && $0.workload == w }) else { continue }
                let name = c.name.padding(toLength: 20, withPad: " ", startingAt: 0) + " " + w.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)
                guard let x = run.result else {
                    s += name + " failed: \(run.error ?? "?")\n"
                    continue
                }
                s += name + String(format: " %8.1f / %-10.1f %8.1f / %-10.1f %d/%d\n", x.ttftMs.avg, x.ttftMs.p99, x.jctMs.avg, x.jctMs.p99,
                                   x.requests - x.errors, x.requests + x.skipped)
            }
        }
        return s
    }
}
