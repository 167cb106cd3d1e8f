import Foundation

/// A value handed to another thread as is: what the tests move (models, closures over them) is
/// used by one thread at a time.
final class UnsafeTransfer<V>: @unchecked Sendable {
    let value: V
    init(_ value: V) { self.value = value }
}

/// Runs CPU-heavy synchronous work (forward passes in a debug build) on its own thread, so the
/// Swift concurrency pool (two threads on a 2-core machine) stays free for the async tests that
/// run beside it: their timers and keep-alives would otherwise wait for seconds.
func offPool<T>(_ work: @escaping () throws -> T) async throws -> T {
    let job = UnsafeTransfer(work)
    let result: UnsafeTransfer<Result<T, any Error>> = await withCheckedContinuation { c in
        Thread { c.resume(returning: UnsafeTransfer(Result { try job.value() })) }.start()
    }
    return try result.value.get()
}
