import ArgumentParser
import Bench
import Foundation

struct KernelBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Quantized mat-mul throughput per weight format (GB/s of weights, GFLOP/s), all formats in one run.")

    @OptionGroup var output: BenchOutputArguments
    @Option(help: "Matrix rows (output dimension).") var rows = 4096
    @Option(help: "Matrix columns (input dimension); a multiple of 256 for the K-quants.") var cols = 2048
    @Option(name: .customLong("batch"), help: "Batch sizes (repeatable).") var batches: [Int] = [1, 4]
    @Option(name: .customLong("format"), help: "Formats to run (repeatable; default all): \(KernelFormatBench.formatNames.joined(separator: ", ")).")
    var formats: [String] = []
    @Option(help: "Threads.") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "Reuse one copy of the weights (cache-resident) instead of streaming them from DRAM.") var hot = false

    func run() throws {
        let unknown = formats.filter { !KernelFormatBench.formatNames.contains($0) }
        guard unknown.isEmpty else {
            throw ValidationError("unknown format \(unknown.joined(separator: ", ")) (executable: \(KernelFormatBench.formatNames.joined(separator: ", ")))")
        }
        let r = KernelFormatBench.run(formats: formats.isEmpty ? nil : formats, rows: rows, cols: cols,
                                          batches: batches, threads: threads, cold: !hot) {
            FileHandle.standardError.write(Data("bench: \($0)\n".utf8))
        }
        if output.json { try printJSON(r); return }
        var rows: [(String, String)] = [("matrix", "\(r.rows) x \(r.cols), \(r.threads) threads, \(r.cold ? "cold (DRAM)" : "hot (cache)")")]
        for e in r.entries {
            rows.append(("\(e.format) batch \(e.batch)", String(format: "%7.2f GB/s  %7.1f GFLOP/s  %8.1f µs/call  (%.4f bytes/weight)",
                                                                 e.gb_per_s, e.gflops, e.us_per_call, e.bytes_per_weight)))
        }
        printTable(rows)
    }
}
