import Foundation

/// Physical limits of the machine, measured the way the engine uses it, so that `memserve
/// bench` can print achieved numbers next to what the hardware allows in the same run.
public enum Calibration {
    /// fp32 GEMM throughput in GFLOP/s of `parallelSgemm` on size×size×size (each pool thread
    /// running single-threaded BLAS on its slice of N). Sets BLAS to 1 thread.
    public static func sgemmGFLOPS(pool: ThreadPool, size: Int = 1024) -> Double {
        BLAS.setThreads(1)
        let n = size
        let a = randomFloats(n * n, seed: 1), b = randomFloats(n * n, seed: 2)
        let c = alignedFloats(n * n)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        let once = {
            parallelSgemm(pool: pool, m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: c, ldc: n)
        }
        let seconds = bestTime(minimumSeconds: 0.3, once)
        return 2 * Double(n) * Double(n) * Double(n) / seconds / 1e9
    }

    /// Sustained memory read bandwidth in GB/s (1e9 bytes): all pool threads summing their
    /// slice of a buffer far larger than the last-level cache with SIMD loads.
    public static func memoryReadGBps(pool: ThreadPool, megabytes: Int = 512) -> Double {
        let count = megabytes << 18 // floats
        let buf = alignedFloats(count)
        defer { buf.deallocate() }
        // Touch every page (in parallel) so the measurement does not include page faults.
        pool.run { t in
            let r = ThreadPool.split(count, part: t, of: pool.threadCount)
            (buf + r.lowerBound).initialize(repeating: 1, count: r.count)
        }
        let sink = UnsafeMutablePointer<Float>.allocate(capacity: pool.threadCount * 16)
        defer { sink.deallocate() }
        let seconds = bestTime(minimumSeconds: 0.5, repetitions: 3) {
            pool.run { t in
                let r = ThreadPool.split(count / 64, part: t, of: pool.threadCount)
                sink[16 * t] = streamSum(buf + 64 * r.lowerBound, 64 * r.count)
            }
        }
        return Double(count * 4) / seconds / 1e9
    }

    /// Single-thread memcpy bandwidth in GB/s of bytes copied (each byte read once and
    /// written once), between two buffers larger than the last-level cache.
    public static func memcpyGBps(megabytes: Int = 256) -> Double {
        let bytes = megabytes << 20
        let src = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let dst = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { src.deallocate(); dst.deallocate() }
        memset(src, 1, bytes)
        memset(dst, 0, bytes)
        let seconds = bestTime(minimumSeconds: 0.3, repetitions: 3) { _ = memcpy(dst, src, bytes) }
        return Double(bytes) / seconds / 1e9
    }
}

/// Σ x over `n` floats (a multiple of 64), four independent accumulators.
@inline(never)
func streamSum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    let p = UnsafeRawPointer(x)
    var a = SIMD16<Float>(), b = SIMD16<Float>(), c = SIMD16<Float>(), d = SIMD16<Float>()
    var o = 0
    while o < 4 * n {
        a += load16(p, o); b += load16(p, o + 64); c += load16(p, o + 128); d += load16(p, o + 192)
        o += 256
    }
    return hsum((a + b) + (c + d))
}

/// Shortest wall time of `body` over at least `repetitions` runs and `minimumSeconds` total,
/// after one warm-up run.
func bestTime(minimumSeconds: Double, repetitions: Int = 5, _ body: () -> Void) -> Double {
    body()
    var best = Double.infinity
    var total = 0.0
    var runs = 0
    while runs < repetitions || total < minimumSeconds {
        let t0 = monotonicNanoseconds()
        body()
        let dt = Double(monotonicNanoseconds() - t0) * 1e-9
        best = min(best, dt)
        total += dt
        runs += 1
    }
    return best
}

/// `n` uninitialized floats on a 64-byte boundary (whole-cache-line vector loads).
/// Deallocate with `deallocate()`.
func alignedFloats(_ n: Int) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer.allocate(byteCount: 4 * max(n, 1), alignment: 64).bindMemory(to: Float.self, capacity: n)
}

/// Uniform floats in [-1, 1) from a fixed-seed generator (deterministic benchmarks), 64-byte
/// aligned.
func randomFloats(_ n: Int, seed: UInt64) -> UnsafeMutablePointer<Float> {
    let p = alignedFloats(n)
    var rng = SplitMix64(seed: seed)
    for i in 0..<n { p[i] = Float(Int32(truncatingIfNeeded: rng.next() >> 32)) * (1 / 2_147_483_648) }
    return p
}

/// SplitMix64: a small deterministic generator for synthetic weights, benchmark data and seeding.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    /// Uniform in [0, 1).
    public mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
