import Synchronization

/// A value produced once, on any thread, and awaited by one async caller: the bridge from an
/// engine thread (or a gRPC stream handler) to a task waiting for it.
///
/// A waiter that is cancelled marks the promise (`isCancelled`) but keeps waiting for the
/// producer's answer, so a resource handed over at the same moment is never lost.
public final class Promise<Value: Sendable>: Sendable {
    private enum State {
        case pending(CheckedContinuation<Value, any Error>?)
        case done(Result<Value, any Error>)
    }
    private let state = Mutex<State>(.pending(nil))
    private let cancelled = Atomic<Bool>(false)

    public init() {}

    /// Whether the waiter was cancelled (producers check it to give up early).
    public var isCancelled: Bool { cancelled.load(ordering: .acquiring) }

    /// Whether a result was set.
    public var isResolved: Bool {
        state.withLock { if case .done = $0 { true } else { false } }
    }

    public func succeed(_ value: Value) { resolve(.success(value)) }
    public func fail(_ error: any Error) { resolve(.failure(error)) }

    /// Sets the result; later calls are ignored.
    public func resolve(_ result: Result<Value, any Error>) {
        let waiter = state.withLock { s -> CheckedContinuation<Value, any Error>? in
            guard case let .pending(c) = s else { return nil }
            s = .done(result)
            return c
        }
        waiter?.resume(with: result)
    }

    /// Waits for the result (one waiter).
    public func value() async throws -> Value {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Value, any Error>) in
                let ready = state.withLock { s -> Result<Value, any Error>? in
                    switch s {
                    case let .done(r): return r
                    case .pending: s = .pending(c); return nil
                    }
                }
                if let ready { c.resume(with: ready) }
            }
        } onCancel: {
            cancelled.store(true, ordering: .releasing)
        }
    }
}
