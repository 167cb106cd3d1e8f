import Foundation
import Kernels

/// Figures of ``KernelFormatBench/run(rows:cols:batches:threads:cold:)``; field names are the JSON keys.
public struct KernelFormatBenchResult: Codable, Sendable {
    public struct Entry: Codable, Sendable {
        /// Weight format, as GGUF names it ("Q4_K").
        public var format: String
        public var batch: Int
        /// Bytes of that format per weight.
        public var bytes_per_weight: Double
        public var us_per_call: Double
        /// Weight bytes read per second.
        public var gb_per_s: Double
        /// Multiply-adds × 2 per second.
        public var gflops: Double
    }
    public var rows: Int
    public var cols: Int
    public var threads: Int
    /// Weights streamed from DRAM (true) or reused from cache (false).
    public var cold: Bool
    public var entries: [Entry]
}

/// `quantizedMatMul` of one rows × cols matrix in every weight format the engine executes, at
/// the given batch sizes, in one run (so the formats are compared under the same machine load).
public enum KernelFormatBench {
    /// Every executable format's GGUF name, in bench order.
    public static var formatNames: [String] { WeightFormat.allCases.map(\.description) }

    public static func run(formats: [String]? = nil, rows: Int, cols: Int, batches: [Int], threads: Int,
                           cold: Bool = true, progress: (String) -> Void = { _ in }) -> KernelFormatBenchResult {
        let pool = ThreadPool(threadCount: threads)
        var entries: [KernelFormatBenchResult.Entry] = []
        for format in WeightFormat.allCases where formats?.contains(format.description) ?? true {
            guard cols % format.blockSize == 0 else {
                progress("\(format): skipped, \(cols) columns is not a multiple of its block size \(format.blockSize)")
                continue
            }
            for batch in batches {
                let r = KernelBench.quantizedMatMul(format: format, rows: rows, cols: cols, batch: batch, pool: pool, cold: cold)
                progress("\(format) batch \(batch): \(r)")
                entries.append(.init(format: format.description, batch: batch,
                                     bytes_per_weight: Double(format.blockBytes) / Double(format.blockSize),
                                     us_per_call: r.microseconds, gb_per_s: r.gigabytesPerSecond, gflops: r.gflops))
            }
        }
        return KernelFormatBenchResult(rows: rows, cols: cols, threads: threads, cold: cold, entries: entries)
    }
}
