import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Keeps one instance's `MemberRecord` in etcd for as long as the service runs: the record is
/// put under `<prefix>/members/<address>` attached to a lease, the lease is renewed every third
/// of its TTL, and a lost lease (expired during a long pause, or gone with etcd's data) is
/// replaced by a new registration. On graceful shutdown the key is deleted and the lease
/// revoked, so routers see the leave at once; on plain cancellation (a crash, in effect)
/// nothing is sent and the key expires with the lease.
public final class MembershipRegistration: Service {
    public let record: MemberRecord
    public let key: String
    public let ttlSeconds: Int
    private let client: EtcdClient
    private let backoff: Backoff
    private let logger: Logger
    private let lease = Mutex<LeaseID?>(nil)

    /// - Parameters:
    ///   - prefix: the cluster's key prefix (`/memserve` unless told otherwise).
    ///   - ttlSeconds: how long the record outlives its last keep-alive.
    ///   - backoff: retry delays while etcd cannot be reached.
    public init(client: EtcdClient, prefix: String = MembershipKeys.defaultPrefix, record: MemberRecord,
                ttlSeconds: Int = 5, backoff: Backoff = Backoff(),
                logger: Logger = Logger(label: "memserve.membership")) {
        self.client = client
        self.record = record
        self.key = MembershipKeys(prefix: prefix).key(for: record.address)
        self.ttlSeconds = max(1, ttlSeconds)
        self.backoff = backoff
        self.logger = logger
    }

    /// The lease the record is attached to now; nil before the first registration succeeds and
    /// after deregistration.
    public var currentLease: LeaseID? { lease.withLock { $0 } }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await self.maintain() }
        } catch is CancellationError {
            // Graceful shutdown cancels `maintain`; plain cancellation ends here too.
        }
        guard Task.isShuttingDownGracefully else { return }
        await deregister()
    }

    /// Registers, keeps the lease alive, and registers again whenever the lease is lost.
    /// Returns only by throwing `CancellationError`.
    private func maintain() async throws {
        var retry = Backoff.Sequence(backoff)
        while true {
            try Task.checkCancellation()
            let granted: LeaseID
            do {
                granted = try await register()
                retry.reset()
            } catch let error as EtcdError {
                logger.warning("membership: registration failed, retrying", metadata: [
                    "key": "\(key)", "error": "\(error)",
                ])
                try await Task.sleep(for: retry.next())
                continue
            }
            try await keepAlive(granted)
            logger.warning("membership: lease lost, registering again", metadata: [
                "key": "\(key)", "lease": "\(granted)",
            ])
        }
    }

    private func register() async throws -> LeaseID {
        let granted = try await client.grantLease(ttlSeconds: ttlSeconds)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let value = try Array(encoder.encode(record))
        // Known before the put, since watchers may see the key before the put returns.
        lease.withLock { $0 = granted }
        do {
            try await client.put(key: key, value: value, lease: granted)
        } catch {
            lease.withLock { if $0 == granted { $0 = nil } }
            try? await client.revoke(granted)
            throw error
        }
        logger.info("membership: registered", metadata: ["key": "\(key)", "lease": "\(granted)", "ttl": "\(ttlSeconds)"])
        return granted
    }

    /// Renews `granted` every TTL/3; returns when etcd says the lease is gone. While etcd cannot
    /// be reached it retries sooner, so the lease is renewed as soon as etcd is back.
    private func keepAlive(_ granted: LeaseID) async throws {
        let interval = Duration.seconds(ttlSeconds) / 3
        var retry = Backoff.Sequence(Backoff(initial: backoff.initial, maximum: min(backoff.maximum, interval)))
        var delay = interval
        while true {
            try await Task.sleep(for: delay)
            do {
                try await client.keepAliveOnce(granted)
                retry.reset()
                delay = interval
            } catch EtcdError.leaseNotFound {
                lease.withLock { if $0 == granted { $0 = nil } }
                return
            } catch let error as EtcdError {
                logger.warning("membership: keep-alive failed", metadata: ["key": "\(key)", "error": "\(error)"])
                delay = retry.next()
            }
        }
    }

    /// Deletes the key and revokes the lease; failures are logged, since the lease expires anyway.
    private func deregister() async {
        guard let granted = lease.withLock({ current -> LeaseID? in
            defer { current = nil }
            return current
        }) else { return }
        do {
            try await client.delete(key: key)
            try await client.revoke(granted)
            logger.info("membership: deregistered", metadata: ["key": "\(key)"])
        } catch EtcdError.leaseNotFound {
            logger.info("membership: deregistered (lease already gone)", metadata: ["key": "\(key)"])
        } catch {
            logger.warning("membership: deregistration failed; the key expires with its lease", metadata: [
                "key": "\(key)", "error": "\(error)",
            ])
        }
    }
}
