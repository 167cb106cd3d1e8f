import Foundation
import Synchronization

/// A fixed set of threads that run one closure together, fork-join style.
///
/// `run` is called hundreds of times per decode step, so it must cost well under a
/// microsecond, not the tens of microseconds of a Dispatch fan-out. Workers are persistent
/// threads that, after each job, spin on an atomic ticket for `spinMicroseconds` (so the next
/// `run` of a decode step finds them awake) and then park on a condition variable (so an
/// idle pool costs no CPU).
///
/// Parts are claimed dynamically: the caller runs part 0, then claims whatever parts no worker
/// has started. So when a worker has lost its core to another process, the caller finishes
/// the job alone instead of waiting a scheduler time slice for it.
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
        state = PoolState(spinNanoseconds: UInt64(max(0, spinMicroseconds)) * 1000)
        for _ in 1..<self.threadCount {
            let s = state
            let thread = Thread { s.workerLoop() }
            thread.name = "memserve-pool"
            thread.start()
        }
    }

    deinit { state.shutdown() }

    /// Runs `body(t)` for every t in 0..<threadCount and returns when all are done. Each part
    /// runs exactly once; the caller runs part 0 and the others run on whichever pool thread
    /// claims them (possibly the caller too, see the type's documentation), so per-part
    /// scratch indexed by `t` is safe, per-thread state is not. Not reentrant.
    public func run(_ body: (Int) -> Void) {
        run(parts: threadCount, body)
    }

    /// Runs `body(p)` for every p in 0..<parts (fewer than 65000) on the pool's threads, the
    /// caller included, and returns when all are done. More parts than threads balance the
    /// load when threads run at different speeds, at ~0.1 µs per extra part.
    public func run(parts: Int, _ body: (Int) -> Void) {
        precondition(parts < 65_000, "too many parts") // leaves headroom for over-claims
        if threadCount == 1 || parts <= 1 {
            for p in 0..<parts { body(p) }
            return
        }
        withoutActuallyEscaping(body) { body in
            state.publish(body, parts: parts)
            body(0)
            state.claimParts()
            state.waitForParts(parts - 1)
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
    /// generation << 32 | parts << 16 | next unclaimed part, so that one fetch-add both claims
    /// a part and tells which job it belongs to; a claim past the last part just means
    /// "nothing left in this generation".
    let ticket = Atomic<Int>(0)
    /// Parts other than 0 finished in the current generation.
    let done = Atomic<Int>(0)
    /// Workers parked (or about to park) on `condition`.
    let sleepers = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let condition = NSCondition()
    /// The current job. Written before the ticket is published (release) and read after a
    /// part is claimed (acquire); a generation cannot end while one of its parts is claimed
    /// but not done, so a claimer always sees its own generation's job.
    nonisolated(unsafe) var job: ((Int) -> Void)?
    /// 32-bit generation counter; only the caller of `run` touches it.
    nonisolated(unsafe) var generation = 0
    let spinNanoseconds: UInt64

    init(spinNanoseconds: UInt64) {
        self.spinNanoseconds = spinNanoseconds
    }

    func publish(_ body: @escaping (Int) -> Void, parts: Int) {
        job = body
        done.store(0, ordering: .relaxed)
        generation = (generation + 1) & 0xFFFF_FFFF
        // Part 0 is the caller's. Sequentially consistent on both sides (here and in
        // `spinThenPark`): either a parking worker sees the new ticket, or we see it counted
        // in `sleepers` and wake it.
        ticket.store(generation << 32 | parts << 16 | 1, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            condition.lock()
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Runs unclaimed parts of the current generation until none is left; returns the
    /// generation it claimed in.
    @discardableResult
    func claimParts() -> Int {
        while true {
            let c = ticket.wrappingAdd(1, ordering: .acquiringAndReleasing).oldValue
            let part = c & 0xFFFF, parts = (c >> 16) & 0xFFFF
            if part >= parts { return c >> 32 }
            job!(part)
            done.wrappingAdd(1, ordering: .releasing)
        }
    }

    func waitForParts(_ n: Int) {
        var spins = 0
        while done.load(ordering: .acquiring) != n {
            spins += 1
            // A worker preempted inside its part needs a core to finish it.
            if spins > 20_000 { sched_yield() }
        }
        job = nil
    }

    func workerLoop() {
        var seen = 0
        while true {
            if ticket.load(ordering: .acquiring) >> 32 == seen { spinThenPark(seen) }
            if stopping.load(ordering: .acquiring) { return }
            seen = claimParts()
        }
    }

    /// Returns once the ticket's generation differs from `seen`.
    private func spinThenPark(_ seen: Int) {
        let start = monotonicNanoseconds()
        var i = 0
        while true {
            if ticket.load(ordering: .acquiring) >> 32 != seen { return }
            i &+= 1
            if i & 1023 == 0 && monotonicNanoseconds() &- start > spinNanoseconds { break }
        }
        condition.lock()
        sleepers.wrappingAdd(1, ordering: .sequentiallyConsistent)
        while ticket.load(ordering: .sequentiallyConsistent) >> 32 == seen { condition.wait() }
        sleepers.wrappingSubtract(1, ordering: .relaxed)
        condition.unlock()
    }

    func shutdown() {
        stopping.store(true, ordering: .releasing)
        // A new generation with no parts wakes every worker, which then sees `stopping`.
        ticket.store(((generation + 1) & 0xFFFF_FFFF) << 32, ordering: .sequentiallyConsistent)
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
