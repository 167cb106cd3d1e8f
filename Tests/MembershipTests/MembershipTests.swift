import Foundation
import Logging
import Membership
import ServiceLifecycle
import Testing

@Suite("Membership through a real etcd")
struct MembershipTests {
    let prefix = "/memserve-test"
    let logger = Logger(label: "membership-test")

    @Test func registrationAppearsInDiscoveryAsJoined() async throws {
        try await withEtcd { etcd in
            let discovery = MembershipDiscovery(client: etcd.client, prefix: prefix, logger: logger)
            let changes = Recorder(discovery.members())
            defer { changes.stop() }
            #expect(await changes.next() == .snapshot([]))

            // A TTL no stall of a loaded machine reaches: the key must still be there below.
            let record = member("127.0.0.2:7001")
            let registration = MembershipRegistration(client: etcd.client, prefix: prefix, record: record,
                                                      ttlSeconds: 60, logger: logger)
            let running = Task { try await registration.run() }
            defer { running.cancel() }
            #expect(await changes.next() == .joined(record))

            // A router that starts later finds the member in its first snapshot.
            let late = Recorder(discovery.members())
            defer { late.stop() }
            #expect(await late.next() == .snapshot([record]))
            let stored = try await etcd.client.range(prefix: prefix + "/members/").kvs
            #expect(stored.map(\.key) == [prefix + "/members/127.0.0.2:7001"])
            #expect(stored.first?.lease != nil && stored.first?.lease == registration.currentLease)
        }
    }

    @Test func gracefulShutdownLeavesPromptly() async throws {
        try await withEtcd { etcd in
            let changes = Recorder(MembershipDiscovery(client: etcd.client, prefix: prefix, logger: logger).members())
            defer { changes.stop() }
            #expect(await changes.next() == .snapshot([]))

            // A TTL far beyond the wait below: the leave can only come from deregistration.
            let record = member("127.0.0.2:7002")
            let registration = MembershipRegistration(client: etcd.client, prefix: prefix, record: record,
                                                      ttlSeconds: 120, logger: logger)
            let group = ServiceGroup(services: [registration], gracefulShutdownSignals: [], cancellationSignals: [],
                                     logger: logger)
            let running = Task { try await group.run() }
            defer { running.cancel() }
            #expect(await changes.next() == .joined(record))
            let lease = try #require(registration.currentLease)

            await group.triggerGracefulShutdown()
            #expect(await changes.next(within: .seconds(20)) == .left(address: record.address))
            try await running.value
            #expect(registration.currentLease == nil)
            #expect(try await etcd.client.range(prefix: prefix).kvs.isEmpty)
            await #expect(throws: EtcdError.leaseNotFound(lease)) { try await etcd.client.keepAliveOnce(lease) }
        }
    }

    @Test func registrationThatStopsKeepingAliveExpiresAfterItsTTL() async throws {
        try await withEtcd { etcd in
            let changes = Recorder(MembershipDiscovery(client: etcd.client, prefix: prefix, logger: logger).members())
            defer { changes.stop() }
            #expect(await changes.next() == .snapshot([]))

            // Long enough that the key outlives the check right after cancelling even on a
            // loaded machine; the leave is then awaited for the TTL on top of `patience`.
            let ttl = 15
            let record = member("127.0.0.3:7003")
            let registration = MembershipRegistration(client: etcd.client, prefix: prefix, record: record,
                                                      ttlSeconds: ttl, logger: logger)
            let running = Task { try await registration.run() }
            #expect(await changes.next() == .joined(record))
            let lease = try #require(registration.currentLease)

            // Cancellation is not a graceful shutdown: nothing is deleted, the lease runs out.
            running.cancel()
            try await running.value
            let stillThere = try await etcd.client.range(prefix: prefix).kvs
            #expect(stillThere.map(\.lease) == [lease], "the key left before its lease expired")
            #expect(await changes.next(within: patience + .seconds(ttl)) == .left(address: record.address))
            await #expect(throws: EtcdError.leaseNotFound(lease)) { try await etcd.client.keepAliveOnce(lease) }
        }
    }

    @Test func registrationRegistersAgainAfterItsLeaseIsLost() async throws {
        try await withEtcd { etcd in
            let changes = Recorder(MembershipDiscovery(client: etcd.client, prefix: prefix, logger: logger).members())
            defer { changes.stop() }
            #expect(await changes.next() == .snapshot([]))

            // The revoke is found by the next keep-alive (every TTL/3), well within `patience`; a
            // lease that also expires in a stall reads the same: left, then joined again.
            let record = member("127.0.0.4:7004")
            let registration = MembershipRegistration(client: etcd.client, prefix: prefix, record: record,
                                                      ttlSeconds: 15, logger: logger)
            let running = Task { try await registration.run() }
            defer { running.cancel() }
            #expect(await changes.next() == .joined(record))
            let lost = try #require(registration.currentLease)

            // What a lease expiring during a long pause looks like from etcd's side.
            try await etcd.client.revoke(lost)
            #expect(await changes.next() == .left(address: record.address))
            #expect(await changes.next() == .joined(record))
            let stored = try await etcd.client.range(prefix: prefix).kvs
            let renewed = try #require(stored.first?.lease)
            #expect(renewed != lost)
            #expect(registration.currentLease == renewed)
        }
    }

    @Test func discoverySurvivesEtcdBeingKilledAndRestarted() async throws {
        try await withEtcd { etcd in
            // A TTL no stall of a loaded machine reaches: the first change must be the outage.
            let record = member("127.0.0.5:7005")
            let registration = MembershipRegistration(client: etcd.client, prefix: prefix, record: record,
                                                      ttlSeconds: 60, logger: logger)
            let running = Task { try await registration.run() }
            defer { running.cancel() }
            let changes = Recorder(MembershipDiscovery(client: etcd.client, prefix: prefix, logger: logger).members())
            defer { changes.stop() }
            #expect(await changes.next(where: { $0.snapshotContains(record.address) || $0 == .joined(record) }) != nil)

            await etcd.kill()
            let outage = try #require(await changes.next(), "nothing reported after etcd was killed")
            #expect(outage.isUnavailable, "expected .unavailable, got \(outage)")

            // Same ports, same data: the key and its lease come back, and the registration keeps it.
            try await etcd.restart()
            let resync = try #require(await changes.next(where: { !$0.isUnavailable }))
            #expect(resync == .snapshot([record]))

            // The watch runs again: a member joining now is seen.
            let newcomer = member("127.0.0.6:7006")
            let second = MembershipRegistration(client: etcd.client, prefix: prefix, record: newcomer,
                                                ttlSeconds: 60, logger: logger)
            let secondRunning = Task { try await second.run() }
            defer { secondRunning.cancel() }
            #expect(await changes.next() == .joined(newcomer))
        }
    }

    @Test func registrationComesBackAfterEtcdLosesItsData() async throws {
        try await withEtcd { etcd in
            // Long enough that the renewed lease outlives the checks below; short enough that a
            // keep-alive (every TTL/3) finds the lost lease within `patience`.
            let record = member("127.0.0.7:7007")
            let registration = MembershipRegistration(client: etcd.client, prefix: prefix, record: record,
                                                      ttlSeconds: 30, logger: logger)
            let running = Task { try await registration.run() }
            defer { running.cancel() }
            let changes = Recorder(MembershipDiscovery(client: etcd.client, prefix: prefix, logger: logger).members())
            defer { changes.stop() }
            #expect(await changes.next(where: { $0.snapshotContains(record.address) || $0 == .joined(record) }) != nil)
            let before = try #require(registration.currentLease)

            await etcd.kill()
            #expect(await changes.next(where: \.isUnavailable) != nil)
            try await etcd.restart(freshData: true)

            // A new etcd knows neither the key nor the lease: the registration must put both again.
            let back = await changes.next(where: { $0.snapshotContains(record.address) || $0 == .joined(record) })
            #expect(back != nil, "member never came back; saw \(changes.received)")
            let stored = try await etcd.client.range(prefix: prefix).kvs
            #expect(stored.count == 1)
            #expect(stored.first?.lease != nil && stored.first?.lease != before)
        }
    }

    @Test func discoveryKeepsRetryingWhileEtcdIsDown() async throws {
        try await withEtcd { etcd in
            await etcd.kill()
            let discovery = MembershipDiscovery(client: etcd.client, prefix: prefix,
                                                backoff: Backoff(initial: .milliseconds(50), maximum: .milliseconds(500)),
                                                logger: logger)
            let changes = Recorder(discovery.members())
            defer { changes.stop() }
            let first = try #require(await changes.next())
            #expect(first.isUnavailable, "expected .unavailable first, got \(first)")
            try await etcd.restart()
            #expect(await changes.next() == .snapshot([]))
            // One outage, one report.
            #expect(changes.received.filter(\.isUnavailable).count == 1)
        }
    }
}

@Suite struct MemberRecordTests {
    @Test func decodingIgnoresFieldsAddedLater() throws {
        let json = #"{"address":"10.0.0.1:9000","role":"decode","pdMode":"caching3","model":"m","startedAt":12.5,"gpu":"none"}"#
        let record = try JSONDecoder().decode(MemberRecord.self, from: Data(json.utf8))
        #expect(record == MemberRecord(address: "10.0.0.1:9000", role: "decode", pdMode: "caching3", model: "m", startedAt: 12.5))
        let again = try JSONDecoder().decode(MemberRecord.self, from: JSONEncoder().encode(record))
        #expect(again == record)
    }

    @Test func keysNameAddressesUnderTheMembersDirectory() {
        let keys = MembershipKeys(prefix: "/memserve/")
        #expect(keys.members == "/memserve/members/")
        #expect(keys.key(for: "127.0.0.2:7001") == "/memserve/members/127.0.0.2:7001")
        #expect(keys.address(fromKey: "/memserve/members/127.0.0.2:7001") == "127.0.0.2:7001")
        #expect(keys.address(fromKey: "/memserve/members/") == nil)
        #expect(keys.address(fromKey: "/other/members/x") == nil)
    }
}
