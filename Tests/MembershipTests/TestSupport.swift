import Foundation
import Membership
import Synchronization
import Testing

/// How long a test waits for anything etcd should do; generous, since the machine is shared.
let patience: Duration = .seconds(30)

/// The etcd a test runs against. A test that restarts etcd swaps `current`; the helper stops
/// whichever process is current at the end, whatever happened.
final class EtcdHandle: Sendable {
    private let process: Mutex<EtcdProcess>
    init(_ process: EtcdProcess) { self.process = Mutex(process) }

    var current: EtcdProcess { process.withLock { $0 } }
    var client: EtcdClient { EtcdClient(endpoint: current.clientURL) }

    func kill() async { await current.kill() }

    func restart(freshData: Bool = false) async throws {
        let restarted = try await current.restart(freshData: freshData)
        process.withLock { $0 = restarted }
    }
}

/// Runs `body` against a fresh etcd on loopback and stops it afterwards.
func withEtcd(_ body: (EtcdHandle) async throws -> Void) async throws {
    let handle = EtcdHandle(try await EtcdProcess.start())
    do {
        try await body(handle)
    } catch {
        await handle.current.stop()
        throw error
    }
    await handle.current.stop()
}

/// Collects what an async sequence produces so a test can wait, bounded, for an element that
/// matches. Each match consumes the elements up to it.
final class Recorder<Element: Sendable>: Sendable {
    private struct Waiter {
        let predicate: @Sendable (Element) -> Bool
        let continuation: CheckedContinuation<Element?, Never>
    }
    private struct State {
        var items: [Element] = []
        var cursor = 0
        var ended: String?
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0
        var cancelled: Set<UInt64> = []
    }
    private let state = Mutex(State())
    private let consumer = Mutex<Task<Void, Never>?>(nil)

    init<S: AsyncSequence & Sendable>(_ sequence: S) where S.Element == Element {
        let task = Task { [weak self] in
            do {
                for try await element in sequence {
                    guard let self else { return }
                    self.append(element)
                }
                self?.end("finished")
            } catch {
                self?.end("failed: \(error)")
            }
        }
        consumer.withLock { $0 = task }
    }

    deinit { consumer.withLock { $0?.cancel() } }

    func stop() { consumer.withLock { $0?.cancel() } }

    /// Why the sequence ended (`finished` or `failed: <error>`), nil while it runs.
    var endReason: String? { state.withLock { $0.ended } }

    /// Everything received so far.
    var received: [Element] { state.withLock { $0.items } }

    /// The first element from the cursor on that matches, waiting up to `timeout` for it.
    func next(within timeout: Duration = patience,
              where predicate: @escaping @Sendable (Element) -> Bool = { _ in true }) async -> Element? {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        return await withTaskGroup(of: Element?.self) { group in
            group.addTask { await self.wait(id: id, predicate: predicate) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    private func wait(id: UInt64, predicate: @escaping @Sendable (Element) -> Bool) async -> Element? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Element?, Never>) in
                let found: Element?? = state.withLock { state in
                    if state.cancelled.remove(id) != nil { return .some(nil) }
                    if let index = state.items[state.cursor...].firstIndex(where: predicate) {
                        state.cursor = index + 1
                        return .some(state.items[index])
                    }
                    if state.ended != nil { return .some(nil) }
                    state.waiters[id] = Waiter(predicate: predicate, continuation: continuation)
                    return .none
                }
                if let found { continuation.resume(returning: found) }
            }
        } onCancel: {
            let waiter: Waiter? = state.withLock { state in
                if let waiter = state.waiters.removeValue(forKey: id) { return waiter }
                state.cancelled.insert(id)
                return nil
            }
            waiter?.continuation.resume(returning: nil)
        }
    }

    private func append(_ element: Element) {
        let matched: [Waiter] = state.withLock { state in
            state.items.append(element)
            let matching = state.waiters.filter { $0.value.predicate(element) }
            guard let first = matching.first else { return [] }
            // One element satisfies one waiter (tests wait one at a time).
            state.waiters.removeValue(forKey: first.key)
            state.cursor = state.items.count
            return [first.value]
        }
        for waiter in matched { waiter.continuation.resume(returning: element) }
    }

    private func end(_ reason: String) {
        let waiters: [Waiter] = state.withLock { state in
            state.ended = reason
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.continuation.resume(returning: nil) }
    }
}

func member(_ address: String, role: String = "colocated") -> MemberRecord {
    MemberRecord(address: address, role: role, pdMode: "basic", model: "test-model", startedAt: 1_700_000_000)
}

extension MembershipChange {
    var isUnavailable: Bool {
        if case .unavailable = self { return true }
        return false
    }

    func snapshotContains(_ address: String) -> Bool {
        if case .snapshot(let records) = self { return records.contains { $0.address == address } }
        return false
    }

    var isSnapshot: Bool {
        if case .snapshot = self { return true }
        return false
    }
}
