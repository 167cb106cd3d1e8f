import Foundation

/// What an instance publishes about itself in etcd, as JSON under `<prefix>/members/<address>`.
/// Decoding ignores fields it does not know, so newer instances may publish more.
public struct MemberRecord: Codable, Sendable, Hashable {
    /// HOST:PORT of the instance's gRPC server; also its key in etcd.
    public var address: String
    /// `prefill`, `decode` or `colocated`.
    public var role: String
    public var pdMode: String
    public var model: String
    /// Seconds since 1970 when the instance started.
    public var startedAt: Double

    public init(address: String, role: String, pdMode: String, model: String,
                startedAt: Double = Date().timeIntervalSince1970) {
        self.address = address
        self.role = role
        self.pdMode = pdMode
        self.model = model
        self.startedAt = startedAt
    }
}

/// One step of the membership as a router sees it.
public enum MembershipChange: Sendable, Hashable {
    /// Every member, read at once: replaces whatever the consumer knew. Comes first, and again
    /// after every reconnection, since changes may have been missed meanwhile.
    case snapshot([MemberRecord])
    /// A member registered, or re-registered with a new lease or an updated record.
    case joined(MemberRecord)
    /// A member deregistered or its lease expired.
    case left(address: String)
    /// etcd cannot be reached; the consumer should keep its last known members. A `.snapshot`
    /// follows once etcd answers again.
    case unavailable(reason: String)
}

/// Where members live in etcd: `<prefix>/members/<address>`.
public struct MembershipKeys: Sendable, Hashable {
    /// The prefix instances and routers use unless told otherwise.
    public static let defaultPrefix = "/memserve"

    /// The cluster's prefix, without a trailing slash (e.g. `/memserve`).
    public let prefix: String

    public init(prefix: String = MembershipKeys.defaultPrefix) {
        var prefix = prefix
        while prefix.hasSuffix("/") { prefix.removeLast() }
        self.prefix = prefix
    }

    public var members: String { prefix + "/members/" }

    public func key(for address: String) -> String { members + address }

    /// The address a member key names, or nil for a key outside the members directory.
    public func address(fromKey key: String) -> String? {
        guard key.hasPrefix(members), key.count > members.count else { return nil }
        return String(key.dropFirst(members.count))
    }
}
