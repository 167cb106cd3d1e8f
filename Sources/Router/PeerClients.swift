import Serving
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GRPCCore
import GRPCNIOTransportHTTP2
import NIOSSL
import Synchronization
import Wire

/// Why talking to another MemServe process failed.
public enum RemoteError: InstanceFailure, Equatable {
    case badAddress(String)
    case peerFailed(peer: String, reason: String)
    case incompatiblePeer(peer: String, reason: String)
    case noPeer(String)
    case protocolViolation(String)

    public var description: String {
        switch self {
        case let .badAddress(a): "'\(a)' is not a HOST:PORT address"
        case let .peerFailed(peer, reason): "instance \(peer) failed: \(reason)"
        case let .incompatiblePeer(peer, reason): "instance \(peer) cannot join: \(reason)"
        case let .noPeer(why): why
        case let .protocolViolation(why): "protocol violation: \(why)"
        }
    }
}

extension RemoteError {
    /// What went wrong in a call to a peer, in words: the status message and what caused it
    /// (a refused TLS handshake is named as such, since its status alone says only
    /// "unavailable").
    public static func reason(_ error: any Error) -> String {
        guard let rpc = error as? RPCError else { return "\(error)" }
        var cause = rpc.cause
        for _ in 0..<4 {
            guard let inner = cause as? RPCError, inner.cause != nil else { break }
            cause = inner.cause
        }
        if cause == nil && rpc.message.contains("before completing the HTTP/2 connection preface") {
            // What a plaintext client sees of a TLS server (or of a server refusing it).
            return rpc.message + " Does the peer expect TLS (--tls-cert, --tls-key, --tls-ca)?"
        }
        guard let cause else { return rpc.message }
        if cause is NIOSSLError || cause is BoringSSLError || cause is NIOSSLExtraError {
            return "\(rpc.message) TLS handshake failed (\(cause)): do both sides use certificates of the same CA, and does the server's name the address dialled?"
        }
        return "\(rpc.message) (\(cause))"
    }
}

/// A "host:port" address.
public struct PeerAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses "host:port" (host may be a name, an IPv4 address or a bracketed IPv6 address).
    public init(parsing text: String) throws(RemoteError) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65535).contains(port), colon > text.startIndex else { throw .badAddress(text) }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Where gRPC dials: an IP literal as such (TLS then checks the address against the server's
    /// certificate, since SNI cannot carry an IP), a name through DNS (SNI and the check use it).
    var target: any ResolvableTarget {
        var ipv4 = in_addr()
        if inet_pton(AF_INET, host, &ipv4) == 1 { return .ipv4(address: host, port: port) }
        if host.contains(":") { return .ipv6(address: host, port: port) }
        return .dns(host: host, port: port)
    }
}

/// Transport settings for moving KV: large HTTP/2 frames and windows, so a 737 KB block is a
/// few frames and the sender is not throttled by flow control on a fast link.
public enum WireTuning {
    public static let maxFrameSize = (1 << 24) - 1
    public static let windowSize = 64 << 20
    /// Largest message either side accepts (a KV chunk of several blocks).
    public static let maxMessageBytes = 256 << 20
    /// KV bytes per chunk message (at least one block). About 1 MB, so each chunk stays in the
    /// CPU caches while it is serialized, framed and written: measured on loopback, one 737 KB
    /// block per chunk moved 1024 blocks ~10% faster than 2 blocks and ~15% faster than 4 MB.
    public static let chunkBytes = 1 << 20
    /// HTTP/2 pings between peers (servers allow clients to ping this often).
    public static let keepaliveTime = Duration.seconds(10)
    public static let keepaliveTimeout = Duration.seconds(5)
    /// Calls cancelled on one connection before new calls move to a fresh one. A cancelled
    /// call is an RST_STREAM, and the peer's HTTP/2 server (swift-nio-http2's rapid-reset
    /// protection: 200 in 30 s, not configurable through grpc-swift-nio-transport) closes a
    /// connection that resets more, failing every call on it; clients that hang up cancel
    /// calls at that rate under load.
    public static let cancelsPerConnection = 100
    /// How long a connection replaced for that keeps taking new calls (from clients handed out
    /// just before) before it closes, once its calls have finished.
    public static let retireDelay = Duration.seconds(10)

    /// Keeps the multi-megabyte buffers a KV chunk passes through (serialized message, HTTP/2
    /// framing, reassembly, decoded `data`) in malloc's heap once freed. By default glibc maps
    /// such buffers fresh and unmaps or trims them on free, so every chunk paid kernel page
    /// faults and page zeroing for four new buffers: more CPU than the copies themselves.
    /// Process-wide, done once by the first `PeerClients` (every networked process has one).
    static let allocatorTuned: Bool = {
        #if canImport(Glibc)
        // <malloc.h> is not part of the Glibc module: look `mallopt` up (absent on other libcs).
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") {
            let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
            _ = mallopt(-3, 32 << 20) // M_MMAP_THRESHOLD: glibc's largest allowed value
            _ = mallopt(-1, 64 << 20) // M_TRIM_THRESHOLD
        }
        #endif
        return true
    }()
}

/// One gRPC client per peer address, connected on first use and kept: instances and the front
/// end reuse an HTTP/2 connection for every request and transfer to the same peer.
public final class PeerClients: Sendable {
    public typealias Client = Memserve_V1_Instance.Client<HTTP2ClientTransport.Posix>
    private struct Entry {
        let client: GRPCClient<HTTP2ClientTransport.Posix>
        let task: Task<Void, Never>
        var cancels = 0
    }
    private let entries = Mutex<[PeerAddress: Entry]>([:])
    private let closed = Atomic<Bool>(false)
    /// Replaced connections waiting to close (`noteCancelled`); shutdown closes them at once.
    private let retiring = Mutex<[UUID: Task<Void, Never>]>([:])
    /// Mutual TLS to every peer, or nil for plaintext.
    public let tls: PeerTLS?

    public init(tls: PeerTLS? = nil) {
        self.tls = tls
        _ = WireTuning.allocatorTuned
    }

    /// The client for `address` (connects lazily; fails only for an unusable address).
    public func client(for address: PeerAddress) throws -> Client {
        try entries.withLock { map throws -> Client in
            if let e = map[address] { return Client(wrapping: e.client) }
            if closed.load(ordering: .relaxed) { throw RemoteError.noPeer("shutting down") }
            var config = HTTP2ClientTransport.Posix.Config.defaults
            config.http2.maxFrameSize = WireTuning.maxFrameSize
            config.http2.targetWindowSize = WireTuning.windowSize
            config.backoff = .init(initial: .milliseconds(50), max: .seconds(1), multiplier: 1.6, jitter: 0.2)
            // A host that vanishes without closing its connections is noticed within seconds,
            // so the requests on it fail instead of hanging.
            config.connection.keepalive = .init(time: WireTuning.keepaliveTime, timeout: WireTuning.keepaliveTimeout,
                                                allowWithoutCalls: true)
            let transport = try HTTP2ClientTransport.Posix(target: address.target, transportSecurity: tls.clientSecurity,
                                                           config: config)
            let client = GRPCClient(transport: transport)
            let task = Task { _ = try? await client.runConnections() }
            map[address] = Entry(client: client, task: task)
            return Client(wrapping: client)
        }
    }

    /// Counts a call to `address` cancelled before its end; every
    /// `WireTuning.cancelsPerConnection` of them, later calls get a new connection and the old
    /// one closes after `WireTuning.retireDelay`, once its calls have finished.
    public func noteCancelled(_ address: PeerAddress) {
        let retired = entries.withLock { map -> Entry? in
            guard var e = map[address] else { return nil }
            e.cancels += 1
            if e.cancels < WireTuning.cancelsPerConnection {
                map[address] = e
                return nil
            }
            map.removeValue(forKey: address)
            return e
        }
        guard let retired else { return }
        // Not at once: a client handed out a moment ago may be about to start a call on it.
        let client = retired.client, key = UUID()
        retiring.withLock { r in
            r[key] = Task {
                try? await Task.sleep(for: WireTuning.retireDelay)
                client.beginGracefulShutdown()
                _ = self.retiring.withLock { $0.removeValue(forKey: key) }
            }
        }
    }

    /// Closes every connection (in-flight calls finish first).
    public func shutdown() {
        closed.store(true, ordering: .relaxed)
        let all = entries.withLock { map in
            defer { map.removeAll() }
            return Array(map.values)
        }
        for e in all { e.client.beginGracefulShutdown() }
        for t in retiring.withLock({ r in defer { r.removeAll() }; return Array(r.values) }) { t.cancel() }
    }

    /// Call options for messages that carry KV.
    public static var callOptions: CallOptions {
        var o = CallOptions.defaults
        o.maxRequestMessageBytes = WireTuning.maxMessageBytes
        o.maxResponseMessageBytes = WireTuning.maxMessageBytes
        return o
    }
}
