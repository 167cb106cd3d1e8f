import Foundation
import Scheduler
import Serving

// A router over a fixed list of instances (`memserve serve --peers`, `memserve router --peers`)
// and what the router says about itself (debug endpoints).

extension ClusterRouter {
    /// A router over the instances at `peers`, each added as it answers. Fails unless they
    /// form a working system: an instance that takes requests, a decode instance for prefill
    /// instances, one PD mode, one KV layout.
    /// - Parameter requireComplete: false for a router whose members arrive later (etcd).
    public static func connect(model: ServedModel, peers: [PeerAddress], clients: PeerClients = PeerClients(),
                               configuration: Configuration = Configuration(), requireComplete: Bool = true) async throws -> ClusterRouter {
        let router = ClusterRouter(model: model, configuration: configuration, clients: clients)
        for address in peers { try await router.add(GRPCInstance(address: address, clients: clients)) }
        if requireComplete { try router.checkComplete() }
        return router
    }

    /// Whether the members can serve a request at all.
    public func checkComplete() throws(RemoteError) {
        let roles = memberList.map(\.description.role)
        if !roles.contains(where: { $0 != .decode }) { throw .noPeer("no prefill or colocated instance among the instances") }
        if roles.contains(.prefill) && !roles.contains(.decode) { throw .noPeer("prefill instances need at least one decode instance") }
    }

    /// Whether some member can take a request now (`/health`).
    public var canServe: Bool {
        let m = memberList.filter(\.connected)
        let entry = m.contains { $0.description.role != .decode }
        let pd = m.contains { $0.description.role == .prefill } && !m.contains { $0.description.role == .colocated }
        return entry && (!pd || m.contains { $0.description.role == .decode })
    }
}

extension ClusterRouter: RoutingIntrospection {
    /// What the debug endpoint answers for one prompt.
    struct Explanation: Encodable {
        var policy: String
        var prompt_tokens: Int
        var entry: RoutingDecision?
        var decode: RoutingDecision?
        var members: [MemberBody]
    }

    struct MemberBody: Encodable {
        var id: String
        var name: String
        var role: String
        var connected: Bool
        var in_flight: Int
        var running: Int
        var waiting: Int
        var queued_prefill_tokens: Int
        var free_blocks: Int
        var cached_blocks: Int
    }

    private var memberBodies: [MemberBody] {
        memberList.map { m in
            let s = m.description.stats
            return MemberBody(id: m.id.description, name: m.name, role: m.description.role.rawValue,
                              connected: m.connected, in_flight: m.inFlight, running: s.running, waiting: s.waiting,
                              queued_prefill_tokens: s.queuedPrefillTokens, free_blocks: s.hot.free + s.hot.evictable,
                              cached_blocks: s.cachedBlocks)
        }
    }

    public func explainRoute(_ request: ServingRequest) -> Data {
        let plan = try? plan(request, excluding: [], record: false)
        let body = Explanation(policy: configuration.policy.rawValue, prompt_tokens: request.promptTokens.count,
                               entry: plan?.decision, decode: plan?.decodeDecision, members: memberBodies)
        return Self.encode(body)
    }

    struct TreesBody: Encodable {
        var members: [MemberBody]
        var trees: TreeSizes
    }

    public func treeSummary() -> Data {
        Self.encode(TreesBody(members: memberBodies, trees: scheduler.withLock { $0.treeSizes }))
    }

    static func encode(_ value: some Encodable) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(value)) ?? Data("{}".utf8)
    }
}
