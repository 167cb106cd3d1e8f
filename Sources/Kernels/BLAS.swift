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
