import ArgumentParser
import Bench
import Engine
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks; each prints a table, or one JSON object with --json.",
        subcommands: [EngineBenchCommand.self])
}

/// Flags every benchmark shares.
struct BenchOutputArguments: ParsableArguments {
    @Flag(help: "Print one JSON object instead of a table.")
    var json = false
}

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    Output.write(String(decoding: try encoder.encode(value), as: UTF8.self) + "\n")
}

func printTable(_ rows: [(String, String)]) {
    let width = rows.map(\.0.count).max() ?? 0
    for (k, v) in rows { Output.write(k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + v + "\n") }
}

struct EngineBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Prefill (512-token prompt) and batched decode throughput, beside sgemm peak and memory bandwidth.")

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var output: BenchOutputArguments
    @Option(name: .customLong("prompt-tokens")) var promptTokens = 512
    @Option(name: .customLong("decode-steps")) var decodeSteps = 32
    @Option(name: .customLong("batch"), help: "Decode batch sizes (repeatable).") var batches: [Int] = [1, 8, 32]
    @Flag(name: .customLong("no-calibration"), help: "Skip measuring sgemm peak and memory bandwidth.") var noCalibration = false

    func run() throws {
        MemServe.bootstrapLogging(verbose: modelArguments.verbose)
        let model = try modelArguments.load()
        let r = try EngineBench.run(model: model, promptTokens: promptTokens, batches: batches, decodeSteps: decodeSteps,
                                     calibrate: !noCalibration) {
            FileHandle.standardError.write(Data("bench: \($0)\n".utf8))
        }
        if output.json { try printJSON(r); return }
        func f(_ x: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", x) }
        var rows: [(String, String)] = [
            ("model", "\(r.model) (\(r.threads) threads)"),
            ("prefill (pp\(r.prompt_tokens))", "\(f(r.prefill_tokens_per_s)) tokens/s  = \(f(r.prefill_gflops)) GFLOP/s, \(f(100 * r.prefill_fraction_of_sgemm))% of sgemm peak \(f(r.sgemm_gflops)) GFLOP/s"),
        ]
        for b in r.decode_tokens_per_s.keys.sorted(by: { Int($0)! < Int($1)! }) {
            rows.append(("decode batch \(b)", "\(f(r.decode_tokens_per_s[b]!)) tokens/s"))
        }
        rows.append(("decode b1 traffic", "\(f(r.decode_weight_mb_per_step)) MB/step = \(f(r.decode_b1_gbps, 2)) GB/s, \(f(100 * r.decode_b1_fraction_of_bandwidth))% of \(f(r.mem_read_gbps, 2)) GB/s (limit \(f(r.decode_b1_limit_tokens_per_s)) tokens/s)"))
        rows.append(("peak RSS", "\(f(r.peak_rss_mb)) MiB"))
        printTable(rows)
    }
}
