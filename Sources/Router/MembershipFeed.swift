import Logging
import Membership
import ServiceLifecycle

/// Keeps a router's members equal to the instances registered in etcd: a snapshot reconciles
/// (members not in it leave, new ones join), then joins and leaves as they happen. While etcd
/// is unreachable the router keeps the members it knows; their own cache streams tell it when
/// one dies.
public final class MembershipFeed: Service {
    private let router: ClusterRouter
    private let discovery: MembershipDiscovery
    private let logger = Logger(label: "memserve.router")

    public init(router: ClusterRouter, endpoint: String, prefix: String) throws {
        self.router = router
        discovery = MembershipDiscovery(client: EtcdClient(endpoint: endpoint), prefix: prefix)
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            for await change in discovery.members().cancelOnGracefulShutdown() {
                await apply(change)
            }
        } onGracefulShutdown: {}
    }

    func apply(_ change: MembershipChange) async {
        switch change {
        case .snapshot(let records):
            let wanted = Set(records.map(\.address))
            for m in router.memberList where !wanted.contains(m.description.name) && router.isExternal(m.name) {
                router.remove(name: m.name)
            }
            for r in records { await join(r) }
        case .joined(let r):
            await join(r)
        case .left(let address):
            router.remove(name: address)
        case .unavailable(let reason):
            logger.warning("etcd unavailable (\(reason)); keeping the \(router.memberList.count) known instance(s)")
        }
    }

    private func join(_ record: MemberRecord) async {
        if router.memberList.contains(where: { $0.name == record.address }) { return }
        do {
            let address = try PeerAddress(parsing: record.address)
            try await router.add(GRPCInstance(address: address, clients: router.clients))
        } catch {
            logger.warning("instance \(record.address) registered but cannot join: \(error)")
        }
    }
}

extension ClusterRouter {
    /// Whether a member is reached over the network (membership governs those; members of this
    /// process stay).
    func isExternal(_ name: String) -> Bool { (try? PeerAddress(parsing: name)) != nil }
}
