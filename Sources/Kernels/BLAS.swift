#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif

/// Single-precision GEMM through the platform BLAS (OpenBLAS on Linux, Accelerate on macOS).
///
/// MemServe parallelizes across its own `ThreadPool` and calls BLAS single-threaded from each
/// worker on a slice of the output, so one set of threads owns the cores.
public enum BLAS {
    /// Sets the BLAS library's internal thread count (1 when the caller slices work itself).
    public static func setThreads(_ n: Int) {
        #if !canImport(Accelerate)
        openblas_set_num_threads(Int32(n))
        #endif
    }

    /// Row-major C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C.
    @inlinable
    public static func sgemm(transA: Bool = false, transB: Bool = false,
                             m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0,
                             c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

/// Row-major C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C, split over the pool's
/// threads, each calling single-threaded BLAS on its slice.
///
/// Call `BLAS.setThreads(1)` once beforehand so that BLAS does not start threads of its own
/// on top of the pool's. OpenBLAS 0.3.21 (pthread build) is safe to call concurrently this
/// way: with one thread it keeps no shared mutable state per call (buffers are per-thread).
///
/// The split is over the output columns (each thread reads all of A and its share of B: the
/// weights, when B is a weight matrix) unless there are too few columns, then over rows.
public func parallelSgemm(pool: ThreadPool, transA: Bool = false, transB: Bool = false,
                          m: Int, n: Int, k: Int, alpha: Float = 1,
                          a: UnsafePointer<Float>, lda: Int,
                          b: UnsafePointer<Float>, ldb: Int,
                          beta: Float = 0,
                          c: UnsafeMutablePointer<Float>, ldc: Int) {
    let parts = pool.threadCount
    if parts == 1 || m == 0 || n == 0 {
        BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                   b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        return
    }
    if n >= 32 * parts {
        // Column slices in multiples of 16 floats so threads never share a cache line of C.
        let groups = (n + 15) / 16
        pool.run { t in
            let g = ThreadPool.split(groups, part: t, of: parts)
            let lo = g.lowerBound * 16, hi = min(n, g.upperBound * 16)
            if lo >= hi { return }
            // op(B) columns lo..<hi: B[k×n] columns, or B[n×k] rows when transposed.
            let bs = transB ? b + lo * ldb : b + lo
            BLAS.sgemm(transA: transA, transB: transB, m: m, n: hi - lo, k: k, alpha: alpha,
                       a: a, lda: lda, b: bs, ldb: ldb, beta: beta, c: c + lo, ldc: ldc)
        }
    } else {
        pool.run { t in
            let r = ThreadPool.split(m, part: t, of: parts)
            if r.isEmpty { return }
            // op(A) rows r: A[m×k] rows, or A[k×m] columns when transposed.
            let asl = transA ? a + r.lowerBound : a + r.lowerBound * lda
            BLAS.sgemm(transA: transA, transB: transB, m: r.count, n: n, k: k, alpha: alpha,
                       a: asl, lda: lda, b: b, ldb: ldb, beta: beta, c: c + r.lowerBound * ldc, ldc: ldc)
        }
    }
}
