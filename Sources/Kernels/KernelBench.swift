import Foundation

/// Micro-benchmarks of the kernels for `memserve bench`, on synthetic data of given shapes.
///
/// "Cold" runs cycle through enough copies of the weights (≥ 256 MB, far beyond the L3) that
/// they stream from DRAM as in a real decode step, where a layer's weights were evicted by the
/// other layers; "hot" runs reuse one copy, which then sits in L2/L3. Times are the best
/// single call, which filters out other processes on a shared machine.
public enum KernelBench {
    /// Timing of one kernel configuration.
    public struct Result: Sendable, CustomStringConvertible {
        /// Wall time of one call (best of several batches of calls).
        public var secondsPerCall: Double
        /// Weights streamed per call (rows × cols).
        public var weights: Int
        /// Bytes of weights read per call.
        public var weightBytes: Int
        public var batch: Int

        /// Weight bytes per second, in GB/s.
        public var gigabytesPerSecond: Double { Double(weightBytes) / secondsPerCall / 1e9 }
        /// Multiply-adds × 2 per second, in GFLOP/s.
        public var gflops: Double { 2 * Double(weights) * Double(batch) / secondsPerCall / 1e9 }
        public var microseconds: Double { secondsPerCall * 1e6 }

        public var description: String {
            let us = (microseconds * 10).rounded() / 10
            let gb = (gigabytesPerSecond * 100).rounded() / 100
            let gf = (gflops * 10).rounded() / 10
            return "\(us) µs/call, \(gb) GB/s, \(gf) GFLOP/s"
        }
    }

    /// `quantizedMatMul` on all rows of a rows×cols matrix in `format`, batch `batch`, rows split
    /// over `pool`.
    public static func quantizedMatMul(format: WeightFormat, rows: Int, cols: Int, batch: Int,
                                       pool: ThreadPool, cold: Bool = true) -> Result {
        let rowBytes = format.rowBytes(cols: cols)
        let bytes = rows * rowBytes
        let copies = cold ? max(1, (256 << 20) / bytes + 1) : 1
        let data = randomWeights(format, rows: rows * copies, cols: cols, seed: 7)
        defer { data.deallocate() }
        let x = randomFloats(batch * cols, seed: 3)
        let y = alignedFloats(batch * rows)
        defer { x.deallocate(); y.deallocate() }
        var next = 0
        // Best single call: the minimum filters out other processes on a shared machine.
        let t = bestTime(minimumSeconds: 0.25, repetitions: 40) {
            let w = QuantizedMatrix(format: format, rows: rows, cols: cols, base: data + next * bytes)
            Kernels.quantizedMatMul(w, x: x, xStride: cols, batch: batch, y: y, yStride: rows, pool: pool)
            next = (next + 1) % copies
        }
        return Result(secondsPerCall: t, weights: rows * cols, weightBytes: bytes, batch: batch)
    }

    /// The alternative to `quantizedMatMul`: fp32 weights (dequantized at load) through
    /// `parallelSgemm` (pool threads × single-threaded BLAS), or through BLAS's own threads
    /// when `blasThreads` is given (then the pool is not used).
    public static func sgemmMatMul(rows: Int, cols: Int, batch: Int, pool: ThreadPool,
                                   blasThreads: Int? = nil, cold: Bool = true) -> Result {
        let bytes = rows * cols * 4
        let copies = cold ? max(1, (256 << 20) / bytes + 1) : 1
        let w = randomFloats(rows * cols * copies, seed: 5)
        let x = randomFloats(batch * cols, seed: 3)
        let y = alignedFloats(batch * rows)
        defer { w.deallocate(); x.deallocate(); y.deallocate() }
        BLAS.setThreads(blasThreads ?? 1)
        defer { BLAS.setThreads(1) }
        var next = 0
        let t = bestTime(minimumSeconds: 0.25, repetitions: 40) {
            let wb = w + next * rows * cols
            // y[batch×rows] = x[batch×cols] · Wᵀ, W stored [rows×cols] as in GGUF.
            if blasThreads != nil {
                BLAS.sgemm(transB: true, m: batch, n: rows, k: cols, a: x, lda: cols, b: wb, ldb: cols, c: y, ldc: rows)
            } else {
                parallelSgemm(pool: pool, transB: true, m: batch, n: rows, k: cols, a: x, lda: cols,
                              b: wb, ldb: cols, c: y, ldc: rows)
            }
            next = (next + 1) % copies
        }
        return Result(secondsPerCall: t, weights: rows * cols, weightBytes: bytes, batch: batch)
    }

    /// Wall time in seconds of one `ThreadPool.run` with an empty body, back to back (the
    /// workers are spinning, as during a decode step).
    public static func poolRunOverhead(pool: ThreadPool, iterations: Int = 100_000) -> Double {
        let sink = UnsafeMutablePointer<Int>.allocate(capacity: 64 * pool.threadCount)
        defer { sink.deallocate() }
        let t = bestTime(minimumSeconds: 0.2, repetitions: 3) {
            for _ in 0..<iterations { pool.run { t in sink[64 * t] &+= 1 } }
        }
        return t / Double(iterations)
    }

    /// A rows×cols matrix of random weights in `format`: sane scales (no inf/NaN), uniform
    /// quants. Deallocate with `deallocate()`.
    public static func randomWeights(_ format: WeightFormat, rows: Int, cols: Int, seed: UInt64) -> UnsafeMutableRawPointer {
        let bytes = rows * format.rowBytes(cols: cols)
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        var rng = SplitMix64(seed: seed)
        func f() -> Float { Float(Int32(truncatingIfNeeded: rng.next() >> 32)) * (1 / 2_147_483_648) }
        switch format {
        case .f32, .f16, .bf16:
            for i in 0..<rows * cols {
                let v = f()
                switch format {
                case .f32: p.storeBytes(of: v, toByteOffset: 4 * i, as: Float.self)
                case .f16: p.storeBytes(of: floatToHalf(v), toByteOffset: 2 * i, as: UInt16.self)
                default: p.storeBytes(of: UInt16(v.bitPattern >> 16), toByteOffset: 2 * i, as: UInt16.self)
                }
            }
        default:
            // Random quants and sub-block scales; block scales small and positive, mins signed.
            let bb = format.blockBytes
            for blk in 0..<rows * cols / format.blockSize {
                let q = p + blk * bb
                for j in 0..<bb { q.storeBytes(of: UInt8(truncatingIfNeeded: rng.next()), toByteOffset: j, as: UInt8.self) }
                for (k, off) in format.halfScaleOffsets.enumerated() {
                    let v = k == 0 ? 0.01 + abs(f()) * 0.05 : f() * 0.1
                    q.storeBytes(of: floatToHalf(format.blockSize == 256 ? v / 32 : v), toByteOffset: off, as: UInt16.self)
                }
            }
        }
        return p
    }
}
