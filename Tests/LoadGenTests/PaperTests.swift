import Foundation
import Testing
@testable import LoadGen

@Suite("The paper's matrix and its report")
struct PaperTests {
    @Test("routing-policy configurations only when `serve --help` lists --policy")
    func policies() {
        #expect(PaperMatrix.policies(inServeHelp: "--prefill <prefill> --decode <decode> --pd-mode <pd-mode>").isEmpty)
        let help = "--instances <instances>  Colocated instances\n--policy <policy>  round-robin, least-loaded, session or prompt-tree"
        #expect(PaperMatrix.policies(inServeHelp: help) == ["round-robin", "least-loaded", "session", "prompt-tree"])
        let plain = PaperMatrix.configurations().map(\.name)
        #expect(plain == ["colocated-nocache", "colocated", "pd-basic", "pd-caching-1", "pd-caching-2", "pd-caching-3"])
        let all = PaperMatrix.configurations(policies: PaperMatrix.policies(inServeHelp: help), instances: 3)
        #expect(all.count == 10)
        #expect(all.last?.serveArguments == ["--instances", "3", "--policy", "prompt-tree"])
        var bench = PaperBench(executable: "memserve", outputDirectory: URL(fileURLWithPath: "/tmp"))
        #expect(bench.configurations(serveHelp: help).count == 10)
        bench.quick = true
        #expect(bench.configurations(serveHelp: help).map(\.name).suffix(2) == ["2x-session", "2x-prompt-tree"])
        #expect(bench.configurations(serveHelp: help).count == 8)
    }

    static func result(_ kind: WorkloadKind, ttft: [Double], jct: [Double]) -> RunResult {
        let w = Workload(kind: kind, options: WorkloadOptions(requests: ttft.count))
        let records = zip(ttft, jct).enumerated().map { i, tj in
            RequestRecord(session: i, step: 0, group: i, startS: Double(i), ttftMs: tj.0, tpotMs: nil, jctMs: tj.1, maxTokens: 4,
                          outputTokens: 4, promptTokens: 100, cachedTokens: 50, error: nil)
        }
        return RunResult(workload: w, endpoint: "http://x", model: "m", arrival: ArrivalOptions(rate: 1), durationS: 10,
                         records: records, skipped: 0)
    }

    @Test("improvements: our change between configurations beside the paper's figure")
    func improvements() throws {
        let runs = [
            PaperRun(configuration: "colocated-nocache", workload: .sharegpt, result: Self.result(.sharegpt, ttft: [100, 300], jct: [1000, 3000]), error: nil),
            PaperRun(configuration: "pd-basic", workload: .sharegpt, result: Self.result(.sharegpt, ttft: [100, 100], jct: [800, 1200]), error: nil),
            PaperRun(configuration: "pd-caching-3", workload: .sharegpt, result: Self.result(.sharegpt, ttft: [50, 50], jct: [600, 1200]), error: nil),
        ]
        let list = PaperReport.improvements(runs: runs, compare: false)
        func find(_ c: String, _ m: String, _ s: String) -> Improvement? {
            list.first { $0.workload == .sharegpt && $0.comparison == c && $0.metric == m && $0.stat == s }
        }
        // JCT avg 2000 -> 1000: -50%; TTFT avg 100 -> 50 with caching: -50%.
        let d = try #require(find("disaggregation", "jct", "avg"))
        #expect(d.ours == -50 && d.paper == -30)
        let c = try #require(find("caching", "ttft", "avg"))
        #expect(c.ours == -50 && c.paper == -58)
        // P99 of two values interpolates: JCT 3000 * 0.99 + 1000 * 0.01 = 2980 -> 1196.
        let p = try #require(find("disaggregation", "jct", "p99"))
        #expect(abs(p.ours! - (1196.0 - 2980) / 2980 * 100) < 1e-9)
        // Only the paper's figure where we have no run.
        let loogle = try #require(list.first { $0.workload == .loogle && $0.comparison == "caching" && $0.metric == "ttft" && $0.stat == "p99" })
        #expect(loogle.ours == nil && loogle.paper == -45.2)

        let results = PaperResults(
            machine: MachineInfo(cpu: "Test CPU", cores: 2, memoryGib: 4, os: "Linux", commit: "abc123"), model: "m", modelPath: nil,
            quick: true, startedAt: "now", durationS: 12, serveArguments: [], configurations: PaperMatrix.configurations(),
            workloads: [WorkloadPlan(kind: .sharegpt, options: WorkloadOptions(), arrival: ArrivalOptions(rate: 0.5, seed: 1))],
            runs: runs, notes: ["a note"])
        let md = PaperReport.markdown(results, plots: ["cdf_sharegpt.png"])
        for needle in ["Test CPU, 2 cores", "abc123", "| sharegpt | disaggregation (pd-basic vs colocated-nocache) | JCT avg | -50.0% | -30.0% |",
                       "![cdf_sharegpt.png](cdf_sharegpt.png)", "a note", "| colocated-nocache | 2 / 2 | 200 |"] {
            #expect(md.contains(needle), "\(needle)")
        }
        // results.json round-trips in the keys the plot script reads.
        let data = try LoadGenJSON.encoder().encode(results)
        #expect(try LoadGenJSON.decoder.decode(PaperResults.self, from: data) == results)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("\"ttft_ms\"") && text.contains("\"jct_ms\"") && text.contains("\"improvements\""))
    }

    @Test("--compare: another server joins the matrix, the tables and the improvements")
    func compare() throws {
        var bench = PaperBench(executable: "memserve", outputDirectory: URL(fileURLWithPath: "/tmp"))
        bench.compare = "http://127.0.0.1:8080/v1"
        bench.only = ["colocated"]
        let configs = bench.configurations(serveHelp: "")
        #expect(configs.map(\.name) == ["colocated", "compare"])
        #expect(configs.last?.endpoint == "http://127.0.0.1:8080/v1" && configs.last?.serveArguments == [])

        let runs = [
            PaperRun(configuration: "compare", workload: .react, result: Self.result(.react, ttft: [400, 400], jct: [2000, 2000]), error: nil),
            PaperRun(configuration: "colocated", workload: .react, result: Self.result(.react, ttft: [100, 100], jct: [1000, 1000]), error: nil),
        ]
        #expect(!PaperReport.improvements(runs: runs, compare: false).contains { $0.comparison == "memserve vs compare" })
        let list = PaperReport.improvements(runs: runs, compare: true)
        // TTFT 400 -> 100: -75%; JCT 2000 -> 1000: -50%.
        let ttft = try #require(list.first { $0.workload == .react && $0.comparison == "memserve vs compare" && $0.metric == "ttft" && $0.stat == "avg" })
        #expect(ttft.ours == -75)
        let jct = try #require(list.first { $0.workload == .react && $0.comparison == "memserve vs compare" && $0.metric == "jct" && $0.stat == "avg" })
        #expect(jct.ours == -50)

        let results = PaperResults(
            machine: MachineInfo(cpu: "Test CPU", cores: 2, memoryGib: 4, os: "Linux", commit: "abc123"), model: "m", modelPath: nil,
            quick: true, startedAt: "now", durationS: 12, serveArguments: [], configurations: configs,
            workloads: [WorkloadPlan(kind: .react, options: WorkloadOptions(), arrival: ArrivalOptions(rate: 0.5, seed: 1))],
            runs: runs, notes: [])
        let md = PaperReport.markdown(results, plots: [])
        for needle in ["| compare | 2 / 2 | 400 |", "http://127.0.0.1:8080/v1", "memserve vs compare"] {
            #expect(md.contains(needle), "\(needle)")
        }
    }
}
