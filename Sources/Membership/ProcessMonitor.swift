import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Follows a child etcd: collects the tail of its log, notices the line that says it serves
/// clients, and its exit; tasks wait for either without polling.
final class ProcessMonitor: Sendable {
    /// Lines etcd logs once its client listener serves (zap on 3.4 and 3.5+, capnslog on 3.4).
    static let readyMarkers = [
        "serving client traffic insecurely",
        "ready to serve client requests",
        "serving insecure client requests",
    ]
    private static let tailBytes = 16 * 1024

    private struct State {
        var pid: Int32 = 0
        var log: [UInt8] = []
        var ready = false
        var exitStatus: Int32?
        var nextWaiter: UInt64 = 0
        var readyWaiters: [UInt64: CheckedContinuation<Void, Error>] = [:]
        var exitWaiters: [UInt64: CheckedContinuation<Int32?, Never>] = [:]
        var cancelledBeforeWaiting: Set<UInt64> = []
    }

    private let state = Mutex(State())

    var pid: Int32 { state.withLock { $0.pid } }
    var exitStatus: Int32? { state.withLock { $0.exitStatus } }
    var logTail: String { state.withLock { String(decoding: $0.log.suffix(4096), as: UTF8.self) } }

    func started(pid: Int32) { state.withLock { $0.pid = pid } }

    func signal(_ signal: Int32) {
        let pid = state.withLock { $0.exitStatus == nil ? $0.pid : 0 }
        if pid > 0 { _ = kill(pid, signal) }
    }

    func logged(_ data: Data) {
        let wake: [CheckedContinuation<Void, Error>] = state.withLock { state in
            // Search the new bytes plus a marker's length before them, in case a line was split.
            let searchFrom = max(0, state.log.count - 64)
            state.log.append(contentsOf: data)
            var wake: [CheckedContinuation<Void, Error>] = []
            if !state.ready {
                let window = String(decoding: state.log[searchFrom...], as: UTF8.self)
                if Self.readyMarkers.contains(where: { window.contains($0) }) {
                    state.ready = true
                    wake = Array(state.readyWaiters.values)
                    state.readyWaiters = [:]
                }
            }
            if state.log.count > 2 * Self.tailBytes { state.log.removeFirst(state.log.count - Self.tailBytes) }
            return wake
        }
        for waiter in wake { waiter.resume() }
    }

    func exited(_ status: Int32) {
        let (readyWaiters, exitWaiters, log) = state.withLock { state in
            state.exitStatus = status
            defer {
                state.readyWaiters = [:]
                state.exitWaiters = [:]
            }
            return (Array(state.readyWaiters.values), Array(state.exitWaiters.values),
                    String(decoding: state.log.suffix(4096), as: UTF8.self))
        }
        for waiter in readyWaiters { waiter.resume(throwing: EtcdProcessError.exited(status: status, log: log)) }
        for waiter in exitWaiters { waiter.resume(returning: status) }
    }

    /// Returns once etcd serves clients; throws if it exits first.
    func waitUntilReady() async throws {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                let outcome: Result<Void, Error>? = state.withLock { state in
                    if state.ready { return .success(()) }
                    if let status = state.exitStatus {
                        return .failure(EtcdProcessError.exited(status: status, log: String(decoding: state.log.suffix(4096), as: UTF8.self)))
                    }
                    if state.cancelledBeforeWaiting.remove(id) != nil { return .failure(CancellationError()) }
                    state.readyWaiters[id] = continuation
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter: CheckedContinuation<Void, Error>? = state.withLock { state in
                if let waiter = state.readyWaiters.removeValue(forKey: id) { return waiter }
                state.cancelledBeforeWaiting.insert(id)
                return nil
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Returns etcd's exit status once it has exited, or nil if the waiting task is cancelled.
    func waitForExit() async -> Int32? {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Int32?, Never>) in
                let outcome: Int32?? = state.withLock { state in
                    if let status = state.exitStatus { return .some(status) }
                    if state.cancelledBeforeWaiting.remove(id) != nil { return .some(nil) }
                    state.exitWaiters[id] = continuation
                    return .none
                }
                if let outcome { continuation.resume(returning: outcome) }
            }
        } onCancel: {
            let waiter: CheckedContinuation<Int32?, Never>? = state.withLock { state in
                if let waiter = state.exitWaiters.removeValue(forKey: id) { return waiter }
                state.cancelledBeforeWaiting.insert(id)
                return nil
            }
            waiter?.resume(returning: nil)
        }
    }
}
