import Engine
import Foundation
import Kernels
import MemPool
import Model

/// `memserve bench engine`: llama-bench-shaped throughput of the forward pass (pp512 and
/// batched decode), beside the machine's own limits measured in the same run.
public enum EngineBench {
    public struct Result: Codable, Sendable {
        public var model: String
        public var threads: Int
        public var prompt_tokens: Int
        /// Prompt tokens per second for one `prompt_tokens`-token prompt.
        public var prefill_tokens_per_s: Double
        /// Aggregate generated tokens per second, keyed by batch size.
        public var decode_tokens_per_s: [String: Double]
        public var peak_rss_mb: Double
        /// Measured here: sgemm GFLOP/s as the engine calls it (pool threads, single-threaded BLAS each).
        public var sgemm_gflops: Double
        /// Measured here: memory read bandwidth with all pool threads.
        public var mem_read_gbps: Double
        /// Useful FLOPs of the prefill (projections, causal attention, one output row) per second.
        public var prefill_gflops: Double
        public var prefill_fraction_of_sgemm: Double
        /// Bytes of weights one decode step reads, and the batch-1 bandwidth that implies.
        public var decode_weight_mb_per_step: Double
        public var decode_b1_gbps: Double
        public var decode_b1_fraction_of_bandwidth: Double
        /// The bandwidth-bound ceiling of batch-1 decode on this machine.
        public var decode_b1_limit_tokens_per_s: Double
    }

    public static func run(model loaded: LoadedModel, promptTokens: Int = 512, batches: [Int] = [1, 8, 32],
                           decodeSteps: Int = 32, repeats: Int = 3, calibrate: Bool = true, progress: (String) -> Void = { _ in }) throws -> Result {
        let model = loaded.transformer
        let c = model.configuration
        let layout = model.kvLayout
        let contextPerSequence = 128
        let maxBatch = batches.max() ?? 1
        let blocksNeeded = max(layout.blocks(forTokens: promptTokens + 1),
                               maxBatch * layout.blocks(forTokens: contextPerSequence + decodeSteps + 1))
        let pool = try loaded.makeMemPool(hotBlocks: blocksNeeded)
        let kv = KVCacheView(base: pool.hotBase, blockCount: pool.hotBlocks, layout: layout)
        var random = RandomSource(seed: 7)
        func tokens(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32(random.next() % UInt64(c.vocabularySize)) } }

        // Prefill: one prompt, chunked by the model's batch capacity like the scheduler would.
        progress("prefill \(promptTokens) tokens")
        let prompt = tokens(promptTokens)
        let table = pool.allocate(layout.blocks(forTokens: promptTokens))!.map(\.rawValue)
        var times: [Double] = []
        for _ in 0..<(repeats + 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            var pos = 0
            while pos < promptTokens {
                let end = min(promptTokens, pos + model.options.maxBatchTokens)
                var batch = ForwardBatch()
                batch.add(tokens: prompt[pos..<end], startPosition: pos, blockTable: table, wantsLogits: end == promptTokens)
                _ = try model.forward(batch, kv: kv)
                pos = end
            }
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        pool.release(table.map { BlockID(rawValue: $0) })
        let prefillSeconds = median(Array(times.dropFirst()))

        // Decode: `b` sequences with `contextPerSequence` tokens of context, then steps of b tokens.
        var decode: [String: Double] = [:]
        for b in batches {
            progress("decode batch \(b)")
            var tables: [[Int32]] = []
            var batch = ForwardBatch()
            for _ in 0..<b {
                let t = pool.allocate(layout.blocks(forTokens: contextPerSequence + decodeSteps + 1))!.map(\.rawValue)
                tables.append(t)
                batch.removeAll()
                batch.add(tokens: tokens(contextPerSequence), startPosition: 0, blockTable: t, wantsLogits: false)
                _ = try model.forward(batch, kv: kv)
            }
            var next = [Int32](repeating: 1, count: b)
            let start = DispatchTime.now().uptimeNanoseconds
            for step in 0..<decodeSteps {
                batch.removeAll()
                for i in 0..<b {
                    batch.add(tokens: CollectionOfOne(next[i]), startPosition: contextPerSequence + step, blockTable: tables[i], wantsLogits: true)
                }
                let logits = try model.forward(batch, kv: kv)
                for i in 0..<b { next[i] = Int32(argmax(logits.row(i).baseAddress!, c.vocabularySize)) }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            decode[String(b)] = Double(b * decodeSteps) / seconds
            for t in tables { pool.release(t.map { BlockID(rawValue: $0) }) }
        }

        // Before calibration, whose buffers would dominate it.
        let rss = peakRSSMegabytes()
        progress("calibrating sgemm and memory bandwidth")
        let sgemm = calibrate ? Calibration.sgemmGFLOPS(pool: loaded.pool) : .nan
        let bandwidth = calibrate ? Calibration.memoryReadGBps(pool: loaded.pool) : .nan

        let n = Double(promptTokens)
        let projection = 2 * Double(loaded.transformer.weights.projectionMACsPerToken) * n
        let attention = 2 * 2 * Double(c.layerCount * c.headCount * c.headDim) * n * (n + 1) / 2
        let head = 2 * Double(c.vocabularySize * c.hiddenSize)
        let prefillGFLOPS = (projection + attention + head) / prefillSeconds / 1e9
        let bytesPerStep = Double(loaded.transformer.weights.decodeBytesPerStep)
        let b1 = decode["1"] ?? 0
        return Result(
            model: loaded.name, threads: loaded.pool.threadCount, prompt_tokens: promptTokens,
            prefill_tokens_per_s: n / prefillSeconds, decode_tokens_per_s: decode,
            peak_rss_mb: rss, sgemm_gflops: sgemm, mem_read_gbps: bandwidth,
            prefill_gflops: prefillGFLOPS, prefill_fraction_of_sgemm: prefillGFLOPS / sgemm,
            decode_weight_mb_per_step: bytesPerStep / 1e6,
            decode_b1_gbps: b1 * bytesPerStep / 1e9,
            decode_b1_fraction_of_bandwidth: b1 * bytesPerStep / 1e9 / bandwidth,
            decode_b1_limit_tokens_per_s: bandwidth * 1e9 / bytesPerStep)
    }
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? 0 : s[s.count / 2]
}

/// Peak resident set size of this process (VmHWM), in MiB.
public func peakRSSMegabytes() -> Double {
    #if os(Linux)
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
       let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
       let kb = Double(line.split(separator: " ").dropFirst().first ?? "") {
        return kb / 1024
    }
    return 0
    #else
    var usage = rusage()
    getrusage(RUSAGE_SELF, &usage)
    return Double(usage.ru_maxrss) / 1_048_576
    #endif
}
