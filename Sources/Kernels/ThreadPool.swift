import Foundation

/// A fixed set of threads that run one closure together, fork-join style.
///
/// `run` is called hundreds of times per decode step, so it must cost microseconds, not the
/// tens of microseconds of a Dispatch fan-out.
public final class ThreadPool: @unchecked Sendable {
    public let threadCount: Int

    public init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
    }

    /// Runs `body(t)` for every t in 0..<threadCount, the caller being thread 0, and returns
    /// when all are done.
    public func run(_ body: (Int) -> Void) {
        if threadCount == 1 { body(0); return }
        withoutActuallyEscaping(body) { body in
            let box = UncheckedBox(body)
            DispatchQueue.concurrentPerform(iterations: threadCount) { box.value($0) }
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

@usableFromInline struct UncheckedBox<T>: @unchecked Sendable {
    @usableFromInline let value: T
    @usableFromInline init(_ value: T) { self.value = value }
}
