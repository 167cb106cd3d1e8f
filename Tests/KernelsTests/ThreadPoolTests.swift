import Testing
import Foundation
import Kernels

@Suite struct ThreadPoolTests {
    /// Every index runs exactly once per `run`, and all of a run's writes are visible when it
    /// returns, over many back-to-back runs (workers spinning).
    @Test(arguments: [1, 2, 3, 4])
    func eachIndexOncePerRun(threads: Int) {
        let pool = ThreadPool(threadCount: threads)
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 64 * threads)
        counts.initialize(repeating: 0, count: 64 * threads)
        defer { counts.deallocate() }
        let iterations = 5_000
        for i in 0..<iterations {
            pool.run { t in counts[64 * t] += 1 }
            if i % 1000 == 999 {
                for t in 0..<threads { #expect(counts[64 * t] == i + 1) }
            }
        }
        for t in 0..<threads { #expect(counts[64 * t] == iterations) }
    }

    /// More parts than threads, with uneven part durations so that parts migrate between
    /// threads: still each part exactly once per run.
    @Test func partsClaimedExactlyOnce() {
        let pool = ThreadPool(threadCount: 3)
        let parts = 7
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 64 * parts)
        counts.initialize(repeating: 0, count: 64 * parts)
        defer { counts.deallocate() }
        for i in 0..<2_000 {
            pool.run(parts: parts) { p in
                if (i + p) % 97 == 0 { usleep(50) }
                counts[64 * p] += 1
            }
        }
        for p in 0..<parts { #expect(counts[64 * p] == 2_000) }
    }

    /// Runs after the workers have parked (no spinning) still reach every index once.
    @Test func wakesParkedWorkers() {
        let pool = ThreadPool(threadCount: 3, spinMicroseconds: 0)
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 3 * 64)
        counts.initialize(repeating: 0, count: 3 * 64)
        defer { counts.deallocate() }
        for i in 0..<200 {
            if i % 10 == 0 { usleep(500) }
            pool.run { t in counts[64 * t] += 1 }
        }
        for t in 0..<3 { #expect(counts[64 * t] == 200) }
    }

    @Test func poolsCanBeDiscarded() {
        for _ in 0..<20 {
            let pool = ThreadPool(threadCount: 2, spinMicroseconds: 10)
            var hits = [0, 0]
            hits.withUnsafeMutableBufferPointer { h in pool.run { t in h[t] += 1 } }
            #expect(hits == [1, 1])
        }
    }

    @Test func splitCoversRangeContiguously() {
        for n in [0, 1, 7, 100, 101] {
            for parts in 1...5 {
                var next = 0
                for p in 0..<parts {
                    let r = ThreadPool.split(n, part: p, of: parts)
                    #expect(r.lowerBound == next)
                    #expect(r.count >= n / parts && r.count <= n / parts + 1)
                    next = r.upperBound
                }
                #expect(next == n)
            }
        }
    }
}
