import Testing
import Kernels

@Suite struct BLASTests {
    /// parallelSgemm (both the column and the row split, with and without transposes) against
    /// a naive triple loop; tolerance 1e-5 of Σ|a·b|.
    @Test func parallelSgemmMatchesNaive() {
        BLAS.setThreads(1)
        var rng = TestRNG(11)
        let pool = ThreadPool(threadCount: 2)
        for (m, n, k) in [(1, 576, 64), (8, 100, 48), (33, 20, 17), (5, 64, 1)] {
            for transA in [false, true] {
                for transB in [false, true] {
                    let a = randomVector(m * k, &rng), b = randomVector(k * n, &rng)
                    var c = randomVector(m * n, &rng)
                    let c0 = c
                    let lda = transA ? m : k, ldb = transB ? k : n
                    parallelSgemm(pool: pool, transA: transA, transB: transB, m: m, n: n, k: k, alpha: 2,
                                  a: a, lda: lda, b: b, ldb: ldb, beta: 0.5, c: &c, ldc: n)
                    for i in 0..<m {
                        for j in 0..<n {
                            var s = 0.0, mag = 0.0
                            for p in 0..<k {
                                let av = transA ? a[p * lda + i] : a[i * lda + p]
                                let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                                s += Double(av) * Double(bv); mag += abs(Double(av) * Double(bv))
                            }
                            let ref = 2 * s + 0.5 * Double(c0[i * n + j])
                            #expect(abs(Double(c[i * n + j]) - ref) <= 2e-5 * (mag + 1))
                        }
                    }
                }
            }
        }
    }

    /// Single-threaded OpenBLAS called from two pool threads at once, many times over, gives
    /// the same bits as calling it from one thread.
    @Test func concurrentSingleThreadedCallsAgree() {
        BLAS.setThreads(1)
        var rng = TestRNG(12)
        let (m, n, k) = (16, 192, 96)
        let a = randomVector(m * k, &rng), b = randomVector(n * k, &rng)
        var ref = [Float](repeating: 0, count: m * n)
        BLAS.sgemm(transB: true, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, c: &ref, ldc: n)
        let pool = ThreadPool(threadCount: 2)
        let out0 = UnsafeMutableBufferPointer<Float>.allocate(capacity: m * n)
        let out1 = UnsafeMutableBufferPointer<Float>.allocate(capacity: m * n)
        defer { out0.deallocate(); out1.deallocate() }
        for _ in 0..<200 {
            pool.run { t in
                BLAS.sgemm(transB: true, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k,
                           c: (t == 0 ? out0 : out1).baseAddress!, ldc: n)
            }
            #expect(Array(out0) == ref && Array(out1) == ref)
        }
    }
}
