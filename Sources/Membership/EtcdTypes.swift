/// An etcd lease: keys attached to it are deleted when it expires or is revoked.
public struct LeaseID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int64
    public init(_ rawValue: Int64) { self.rawValue = rawValue }
    public var description: String { String(rawValue) }
}

/// One key as etcd stores it. Keys are UTF-8 strings here (the membership layout only uses
/// those); values are raw bytes.
public struct KeyValue: Hashable, Sendable {
    public var key: String
    public var value: [UInt8]
    public var createRevision: Int64
    public var modRevision: Int64
    public var version: Int64
    /// The lease the key is attached to, if any.
    public var lease: LeaseID?

    public init(key: String, value: [UInt8], createRevision: Int64 = 0, modRevision: Int64 = 0,
                version: Int64 = 0, lease: LeaseID? = nil) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.lease = lease
    }

    public var valueString: String { String(decoding: value, as: UTF8.self) }
}

/// A change seen by a watch. A delete carries no value.
public struct WatchEvent: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable { case put, delete }
    public var kind: Kind
    public var key: String
    public var value: [UInt8]
    public var modRevision: Int64
    public var lease: LeaseID?

    public init(kind: Kind, key: String, value: [UInt8], modRevision: Int64, lease: LeaseID? = nil) {
        self.kind = kind
        self.key = key
        self.value = value
        self.modRevision = modRevision
        self.lease = lease
    }
}

/// What can go wrong talking to etcd.
public enum EtcdError: Error, Hashable, Sendable, CustomStringConvertible {
    /// No connection, a reset connection, or no answer within the request timeout.
    case unreachable(endpoint: String, reason: String)
    /// The lease expired or was revoked (or never existed on this cluster).
    case leaseNotFound(LeaseID)
    /// etcd answered with an error.
    case requestFailed(path: String, status: Int, message: String)
    /// etcd answered something that is not the gateway's JSON.
    case badResponse(path: String, reason: String)
    /// A watch asked for history that etcd has compacted away.
    case compacted(compactRevision: Int64)
    /// etcd cancelled a watch for another reason.
    case watchCanceled(reason: String)
    /// A watch's response stream ended (etcd stopped or closed the connection).
    case watchClosed

    public var description: String {
        switch self {
        case .unreachable(let endpoint, let reason): "etcd at \(endpoint) unreachable: \(reason)"
        case .leaseNotFound(let lease): "etcd lease \(lease) not found (expired or revoked)"
        case .requestFailed(let path, let status, let message): "etcd \(path) failed (HTTP \(status)): \(message)"
        case .badResponse(let path, let reason): "etcd \(path) gave a bad response: \(reason)"
        case .compacted(let revision): "etcd watch history compacted up to revision \(revision)"
        case .watchCanceled(let reason): "etcd cancelled the watch: \(reason)"
        case .watchClosed: "etcd closed the watch stream"
        }
    }
}

/// The byte after the last key with `prefix`, as etcd's `range_end` wants it.
func prefixRangeEnd(_ prefix: [UInt8]) -> [UInt8] {
    var end = prefix
    while let last = end.last {
        if last < 0xFF {
            end[end.count - 1] = last + 1
            return end
        }
        end.removeLast()
    }
    // Every byte was 0xFF (or the prefix was empty): the range runs to the end of the keyspace.
    return [0]
}
