import ArgumentParser
import Bench
import Foundation

struct RouterBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "router",
        abstract: "Global scheduler: routing decision latency with 8, 64 and 512 instances over 1M cached blocks, tree memory per cached block, event ingestion rate.")

    @OptionGroup var output: BenchOutputArguments
    @Option(name: .customLong("cached-blocks"), help: "Cached blocks summed over the instances.") var cachedBlocks = 1_000_000
    @Option(help: "Timed routing decisions per configuration.") var decisions = 20_000
    @Option(name: .customLong("instances"), help: "Instance counts (repeatable).") var instances: [Int] = [8, 64, 512]

    func validate() throws {
        if cachedBlocks < 1 || decisions < 1 || instances.isEmpty || instances.contains(where: { $0 < 1 }) {
            throw ValidationError("--cached-blocks, --decisions and --instances must be positive")
        }
    }

    func run() throws {
        var w = RouterBench.Workload()
        w.cachedBlocks = cachedBlocks
        w.decisions = decisions
        w.instances = instances
        let r = RouterBench.run(w) { FileHandle.standardError.write(Data("bench: \($0)\n".utf8)) }
        if output.json { try printJSON(r); return }
        func f(_ x: Double, _ d: Int = 1) -> String { String(format: "%.\(d)f", x) }
        var rows: [(String, String)] = []
        for k in r.decision_us.keys.sorted(by: { (Int($0) ?? 0) < (Int($1) ?? 0) }) {
            let l = r.decision_us[k]!
            rows.append(("\(k) instances", "decision p50 \(f(l.p50)) us, p99 \(f(l.p99)) us   (\(r.cached_blocks[k] ?? 0) cached blocks, \(r.distinct_blocks[k] ?? 0) distinct; \(f(r.bytes_per_cached_block_by_instances[k] ?? 0)) B/block)"))
        }
        rows.append(("tree memory", "\(f(r.bytes_per_cached_block)) bytes per cached block per holder (target < 64)"))
        rows.append(("ingestion", "\(f(r.events_per_s / 1e6, 2))M block-events/s (target > 1M)"))
        rows.append(("p99 target", "< 100 us at 512 instances"))
        printTable(rows)
    }
}
