import Foundation
import Synchronization

/// A fixed set of threads that run one closure together, fork-join style.
///
/// `run` is called hundreds of times per decode step, so it must cost about a microsecond,
/// not the tens of microseconds of a Dispatch fan-out. Workers are persistent threads that,
/// after each job, spin on an atomic generation counter for `spinMicroseconds` (so the next
/// `run` of a decode step finds them awake) and then park on a condition variable (so an
/// idle pool costs no CPU).
///
/// `run` may be called from only one thread at a time, and not from inside a `run` body
/// (no nesting). The pool itself may be shared, but callers must serialize their `run`s.
public final class ThreadPool: @unchecked Sendable {
    public let threadCount: Int
    private let state: PoolState

    /// - Parameters:
    ///   - threadCount: threads that execute each `run`, the caller included (so
    ///     `threadCount - 1` worker threads are started).
    ///   - spinMicroseconds: how long an idle worker keeps polling before it parks.
    public init(threadCount: Int, spinMicroseconds: Int = 200) {
        self.threadCount = max(1, threadCount)
        state = PoolState(workers: self.threadCount - 1, spinNanoseconds: UInt64(max(0, spinMicroseconds)) * 1000)
        for t in 1..<self.threadCount {
            let s = state
            let thread = Thread { s.workerLoop(index: t) }
            thread.name = "memserve-pool-\(t)"
            thread.start()
        }
    }

    deinit { state.shutdown() }

    /// Runs `body(t)` for every t in 0..<threadCount, the caller being thread 0, and returns
    /// when all are done. Not reentrant: see the type's documentation.
    public func run(_ body: (Int) -> Void) {
        if threadCount == 1 { body(0); return }
        withoutActuallyEscaping(body) { body in
            state.dispatch(body)
            body(0)
            state.waitForWorkers()
        }
    }

    /// The `part`-th of `parts` contiguous, nearly equal slices of 0..<n.
    @inlinable
    public static func split(_ n: Int, part: Int, of parts: Int) -> Range<Int> {
        let base = n / parts, extra = n % parts
        let lo = part * base + min(part, extra)
        return lo..<(lo + base + (part < extra ? 1 : 0))
    }
}

/// What the workers share with the caller. Kept apart from `ThreadPool` so that the worker
/// threads do not keep the pool alive and its `deinit` can stop them.
private final class PoolState: @unchecked Sendable {
    /// Bumped once per `run`; workers run the job when it moves past the value they last saw.
    let generation = Atomic<Int>(0)
    /// Workers still running the current job.
    let pending = Atomic<Int>(0)
    /// Workers parked (or about to park) on `condition`.
    let sleepers = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let condition = NSCondition()
    /// The current job. Written before `generation` is bumped (release) and read after it is
    /// observed (acquire), so workers always see the job of the generation they run.
    nonisolated(unsafe) var job: ((Int) -> Void)?
    let workers: Int
    let spinNanoseconds: UInt64

    init(workers: Int, spinNanoseconds: UInt64) {
        self.workers = workers
        self.spinNanoseconds = spinNanoseconds
    }

    func dispatch(_ body: @escaping (Int) -> Void) {
        job = body
        pending.store(workers, ordering: .relaxed)
        // Sequentially consistent on both sides (here and in `park`): either the parking
        // worker sees the new generation, or we see it counted in `sleepers` and wake it.
        generation.wrappingAdd(1, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            condition.lock()
            condition.broadcast()
            condition.unlock()
        }
    }

    func waitForWorkers() {
        var spins = 0
        while pending.load(ordering: .acquiring) != 0 {
            spins += 1
            // A worker that lost its core to another process needs ours to finish.
            if spins > 20_000 { sched_yield() }
        }
        job = nil
    }

    func workerLoop(index: Int) {
        var seen = 0
        while true {
            var g = generation.load(ordering: .acquiring)
            if g == seen { g = spinThenPark(seen) }
            seen = g
            if stopping.load(ordering: .acquiring) { return }
            job!(index)
            pending.wrappingSubtract(1, ordering: .releasing)
        }
    }

    private func spinThenPark(_ seen: Int) -> Int {
        let start = monotonicNanoseconds()
        var i = 0
        while true {
            let g = generation.load(ordering: .acquiring)
            if g != seen { return g }
            i &+= 1
            if i & 1023 == 0 && monotonicNanoseconds() &- start > spinNanoseconds { break }
        }
        condition.lock()
        sleepers.wrappingAdd(1, ordering: .sequentiallyConsistent)
        while generation.load(ordering: .sequentiallyConsistent) == seen { condition.wait() }
        sleepers.wrappingSubtract(1, ordering: .relaxed)
        condition.unlock()
        return generation.load(ordering: .acquiring)
    }

    func shutdown() {
        stopping.store(true, ordering: .releasing)
        generation.wrappingAdd(1, ordering: .sequentiallyConsistent)
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }
}

@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}
