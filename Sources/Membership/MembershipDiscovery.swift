import Foundation
import Logging

/// Follows the members registered under a prefix: a snapshot read with a range, then the
/// changes from a watch that starts right after the snapshot's revision, so nothing is missed
/// or seen twice. A broken watch is re-established with a fresh snapshot; while etcd cannot be
/// reached it retries with bounded backoff and says so with `.unavailable`.
public final class MembershipDiscovery: Sendable {
    public let keys: MembershipKeys
    private let client: EtcdClient
    private let backoff: Backoff
    private let logger: Logger

    public init(client: EtcdClient, prefix: String = MembershipKeys.defaultPrefix, backoff: Backoff = Backoff(),
                logger: Logger = Logger(label: "memserve.membership")) {
        self.client = client
        self.keys = MembershipKeys(prefix: prefix)
        self.backoff = backoff
        self.logger = logger
    }

    /// The membership as a stream of changes: `.snapshot` first (or `.unavailable` first if etcd
    /// does not answer), then `.joined` / `.left`; after a reconnection a new `.snapshot`. Each
    /// outage is reported once with `.unavailable`. Ends only when the consumer stops iterating.
    public func members() -> AsyncStream<MembershipChange> {
        let (stream, continuation) = AsyncStream.makeStream(of: MembershipChange.self)
        let task = Task {
            await self.follow(continuation)
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private func follow(_ output: AsyncStream<MembershipChange>.Continuation) async {
        var retry = Backoff.Sequence(backoff)
        var reportedOutage = false
        var wait: Duration? = nil
        while !Task.isCancelled {
            if let wait {
                do { try await Task.sleep(for: wait) } catch { return }
            }
            // Until a watch is confirmed, every further attempt waits longer.
            wait = retry.next()
            let revision: Int64
            do {
                let (readAt, kvs) = try await client.range(prefix: keys.members)
                output.yield(.snapshot(kvs.compactMap { record(from: $0.key, value: $0.value) }))
                reportedOutage = false
                revision = readAt
            } catch is CancellationError {
                return
            } catch {
                if !reportedOutage {
                    reportedOutage = true
                    logger.warning("membership: etcd unavailable, retrying", metadata: ["error": "\(error)"])
                    output.yield(.unavailable(reason: String(describing: error)))
                }
                continue
            }
            do {
                for try await item in client.watchItems(prefix: keys.members, fromRevision: revision + 1) {
                    switch item {
                    case .created:
                        retry.reset()
                        wait = nil
                    case .event(let event):
                        if let change = change(for: event) { output.yield(change) }
                    }
                }
            } catch is CancellationError {
                return
            } catch {
                logger.info("membership: watch ended, resynchronizing", metadata: ["error": "\(error)"])
            }
            if wait == nil { wait = retry.next() }
        }
    }

    private func change(for event: WatchEvent) -> MembershipChange? {
        switch event.kind {
        case .put:
            return record(from: event.key, value: event.value).map(MembershipChange.joined)
        case .delete:
            return keys.address(fromKey: event.key).map { MembershipChange.left(address: $0) }
        }
    }

    /// The record stored under `key`, or nil (logged) if it is not a well-formed member record.
    private func record(from key: String, value: [UInt8]) -> MemberRecord? {
        guard let address = keys.address(fromKey: key) else { return nil }
        guard let record = try? JSONDecoder().decode(MemberRecord.self, from: Data(value)) else {
            logger.warning("membership: ignoring a malformed member record", metadata: ["key": "\(key)"])
            return nil
        }
        guard record.address == address else {
            logger.warning("membership: ignoring a record whose address is not its key", metadata: [
                "key": "\(key)", "address": "\(record.address)",
            ])
            return nil
        }
        return record
    }
}
