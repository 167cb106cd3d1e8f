import Foundation
@testable import Membership
import Testing

@Suite("EtcdClient against a real etcd")
struct EtcdClientTests {
    @Test func putRangeDeleteRoundTrip() async throws {
        try await withEtcd { etcd in
            let client = etcd.client
            let first = try await client.put(key: "/t/a", value: "1")
            try await client.put(key: "/t/b", value: [0, 255, 10])
            try await client.put(key: "/t/c", value: "3")
            try await client.put(key: "/u/a", value: "outside the prefix")

            let (revision, kvs) = try await client.range(prefix: "/t/")
            #expect(kvs.map(\.key) == ["/t/a", "/t/b", "/t/c"])
            #expect(kvs.map(\.valueString) == ["1", "\u{0}\u{FFFD}\n", "3"])
            #expect(kvs[1].value == [0, 255, 10])
            #expect(kvs[0].modRevision == first)
            #expect(revision == first + 3)
            #expect(kvs.allSatisfy { $0.lease == nil })

            #expect(try await client.delete(key: "/t/b") == 1)
            #expect(try await client.delete(key: "/t/b") == 0)
            #expect(try await client.range(prefix: "/t/").kvs.map(\.key) == ["/t/a", "/t/c"])
            #expect(try await client.range(prefix: "/nothing/").kvs.isEmpty)
        }
    }

    @Test func leaseKeepAliveAndRevoke() async throws {
        try await withEtcd { etcd in
            let client = etcd.client
            let lease = try await client.grantLease(ttlSeconds: 30)
            let remaining = try await client.keepAliveOnce(lease)
            #expect((1...30).contains(remaining))
            try await client.put(key: "/leased", value: "x", lease: lease)
            #expect(try await client.range(prefix: "/leased").kvs.first?.lease == lease)

            try await client.revoke(lease)
            #expect(try await client.range(prefix: "/leased").kvs.isEmpty)
            await #expect(throws: EtcdError.leaseNotFound(lease)) { try await client.keepAliveOnce(lease) }
            await #expect(throws: EtcdError.leaseNotFound(lease)) { try await client.revoke(lease) }
            await #expect(throws: EtcdError.leaseNotFound(lease)) {
                try await client.put(key: "/leased", value: "y", lease: lease)
            }
        }
    }

    @Test func watchDeliversPutsAndDeletesInOrder() async throws {
        try await withEtcd { etcd in
            let client = etcd.client
            let start = try await client.put(key: "/w/a", value: "1")
            let live = Recorder(client.watch(prefix: "/w/", fromRevision: start + 1))
            defer { live.stop() }
            // A watch from an earlier revision replays history first.
            let replay = Recorder(client.watch(prefix: "/w/", fromRevision: start))
            defer { replay.stop() }
            let replayed = try #require(await replay.next())
            #expect(replayed == WatchEvent(kind: .put, key: "/w/a", value: Array("1".utf8), modRevision: start))

            let put = try await client.put(key: "/w/b", value: "2")
            try await client.put(key: "/elsewhere", value: "ignored")
            try await client.delete(key: "/w/a")
            let first = try #require(await live.next())
            let second = try #require(await live.next())
            #expect(first == WatchEvent(kind: .put, key: "/w/b", value: Array("2".utf8), modRevision: put))
            #expect(second.kind == .delete && second.key == "/w/a" && second.value.isEmpty)
            #expect(second.modRevision == put + 2)
        }
    }

    @Test func leaseExpiryRemovesKey() async throws {
        try await withEtcd { etcd in
            let client = etcd.client
            // A stall between grant and put longer than the TTL loses the lease first; grant again.
            var granted: (lease: LeaseID, revision: Int64)?
            for _ in 0..<5 where granted == nil {
                let lease = try await client.grantLease(ttlSeconds: 2)
                do {
                    granted = (lease, try await client.put(key: "/expiring", value: "soon gone", lease: lease))
                } catch EtcdError.leaseNotFound {}
            }
            let (lease, revision) = try #require(granted, "five 2 s leases expired before a put")
            let watch = Recorder(client.watch(prefix: "/expiring", fromRevision: revision + 1))
            defer { watch.stop() }
            let event = try #require(await watch.next(where: { $0.kind == .delete }),
                                     "no delete within \(patience) of a 2 s lease")
            #expect(event.key == "/expiring")
            #expect(try await client.range(prefix: "/expiring").kvs.isEmpty)
            await #expect(throws: EtcdError.leaseNotFound(lease)) { try await client.keepAliveOnce(lease) }
        }
    }

    @Test func unreachableEtcdIsATypedError() async throws {
        let port = try freeLoopbackPort(host: "127.0.0.1")
        let client = EtcdClient(endpoint: "http://127.0.0.1:\(port)", requestTimeout: .seconds(5))
        do {
            _ = try await client.range(prefix: "/x")
            Issue.record("a range against a closed port succeeded")
        } catch let error as EtcdError {
            guard case .unreachable(let endpoint, _) = error else {
                Issue.record("expected .unreachable, got \(error)")
                return
            }
            #expect(endpoint == "http://127.0.0.1:\(port)")
        }
        let watch = Recorder(client.watch(prefix: "/x", fromRevision: 1))
        #expect(await watch.next(within: .seconds(10)) == nil)
        #expect(watch.endReason?.contains("unreachable") == true, "watch ended: \(watch.endReason ?? "not at all")")
    }

    @Test func prefixRangeEndIncrementsTheLastByte() {
        #expect(prefixRangeEnd(Array("/a/".utf8)) == Array("/a0".utf8))
        #expect(prefixRangeEnd([0x61, 0xFF]) == [0x62])
        #expect(prefixRangeEnd([0xFF, 0xFF]) == [0])
        #expect(prefixRangeEnd([]) == [0])
    }

    @Test func etcdProcessNamesAMissingBinaryAndTheFix() async throws {
        do {
            _ = try await EtcdProcess.start(binary: "/nonexistent/etcd")
            Issue.record("started a nonexistent binary")
        } catch let error as EtcdProcessError {
            #expect(String(describing: error).contains("scripts/setup.sh --tests"))
        }
        // The set-up installs etcd; the other tests need it.
        #expect(throws: Never.self) { try EtcdProcess.findBinary() }
    }

    @Test func stopEndsEtcdAndRemovesItsDirectory() async throws {
        let etcd = try await EtcdProcess.start()
        #expect(FileManager.default.fileExists(atPath: etcd.dataDirectory))
        await etcd.stop()
        #expect(!FileManager.default.fileExists(atPath: etcd.directory))
        await #expect(throws: EtcdError.self) {
            try await EtcdClient(endpoint: etcd.clientURL).range(prefix: "/")
        }
    }
}
