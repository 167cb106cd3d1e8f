import AsyncHTTPClient
import Foundation
import NIOCore

/// A client of etcd's v3 API through its JSON gateway (HTTP/JSON on the client port, under
/// `/v3/`, which etcd 3.4 and later serve). Each call is one HTTP request; a watch is one
/// streaming response.
public struct EtcdClient: Sendable {
    /// The client URL, e.g. `http://127.0.0.1:2379` (no trailing slash).
    public let endpoint: String
    /// Bounds every unary call, and a watch until etcd has answered its request.
    public let requestTimeout: Duration
    let httpClient: HTTPClient
    let apiPrefix: String

    /// An HTTP client suited to etcd, shared by the process and never shut down: no read timeout
    /// (a watch may stay silent for hours), a short connect timeout and no connection retries
    /// (a down etcd is reported at once; the membership layer retries with its own backoff).
    public static let defaultHTTPClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(2), read: nil)
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    /// - Parameters:
    ///   - endpoint: etcd's client URL, `http://HOST:PORT`.
    ///   - httpClient: a client passed in should have no read timeout, or watches end (and
    ///     discovery resynchronizes) whenever membership is quiet for that long.
    ///   - apiPrefix: the gateway's path prefix; `/v3` on etcd 3.4 and later.
    public init(endpoint: String, httpClient: HTTPClient = EtcdClient.defaultHTTPClient,
                requestTimeout: Duration = .seconds(5),
                apiPrefix: String = "/v3") {
        var endpoint = endpoint
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        self.endpoint = endpoint
        self.httpClient = httpClient
        self.requestTimeout = requestTimeout
        self.apiPrefix = apiPrefix
    }

    /// Grants a lease that expires `ttlSeconds` after its last keep-alive. etcd may raise a
    /// very short TTL to its minimum.
    public func grantLease(ttlSeconds: Int) async throws -> LeaseID {
        let response: LeaseGrantResponse = try await call("/lease/grant", LeaseGrantRequest(TTL: JSONInt64(Int64(ttlSeconds))))
        guard let id = response.ID?.value, id != 0 else {
            throw EtcdError.badResponse(path: "/lease/grant", reason: "no lease ID")
        }
        return LeaseID(id)
    }

    /// Renews a lease once and returns its remaining TTL in seconds. Throws
    /// `EtcdError.leaseNotFound` when the lease has expired or was revoked.
    @discardableResult
    public func keepAliveOnce(_ lease: LeaseID) async throws -> Int {
        let path = "/lease/keepalive"
        let body = try await post(path, LeaseIDRequest(ID: JSONInt64(lease.rawValue)))
        // The gateway streams one JSON object per line; one request gets one answer.
        guard let line = splitLines(body).first(where: { !$0.isEmpty }) else {
            throw EtcdError.badResponse(path: path, reason: "empty keep-alive response")
        }
        let message: LeaseKeepAliveResponse = try decode(line, path: path)
        if let error = message.error {
            throw EtcdError.requestFailed(path: path, status: 200, message: error.message)
        }
        // etcd answers a keep-alive of an unknown lease with TTL 0 (omitted in JSON).
        guard let ttl = message.result?.TTL?.value, ttl > 0 else { throw EtcdError.leaseNotFound(lease) }
        return Int(ttl)
    }

    /// Revokes a lease, deleting every key attached to it.
    public func revoke(_ lease: LeaseID) async throws {
        let _: PutResponse = try await call("/lease/revoke", LeaseIDRequest(ID: JSONInt64(lease.rawValue)), lease: lease)
    }

    /// Writes `key`, attached to `lease` if given. Returns the store's revision after the write.
    @discardableResult
    public func put(key: String, value: [UInt8], lease: LeaseID? = nil) async throws -> Int64 {
        let request = PutRequest(key: JSONBytes(key), value: JSONBytes(value), lease: lease.map { JSONInt64($0.rawValue) })
        let response: PutResponse = try await call("/kv/put", request, lease: lease)
        return response.header?.revision?.value ?? 0
    }

    @discardableResult
    public func put(key: String, value: String, lease: LeaseID? = nil) async throws -> Int64 {
        try await put(key: key, value: Array(value.utf8), lease: lease)
    }

    /// Every key starting with `prefix`, in key order, and the store's revision they were read at
    /// (a watch from `revision + 1` misses nothing after this read).
    public func range(prefix: String) async throws -> (revision: Int64, kvs: [KeyValue]) {
        let start = prefix.isEmpty ? [0] : Array(prefix.utf8)
        let request = RangeRequest(key: JSONBytes(start), range_end: JSONBytes(prefixRangeEnd(Array(prefix.utf8))))
        let response: RangeResponse = try await call("/kv/range", request)
        return (response.header?.revision?.value ?? 0, (response.kvs ?? []).map(\.keyValue))
    }

    /// Deletes one key. Returns how many keys were deleted (0 or 1).
    @discardableResult
    public func delete(key: String) async throws -> Int {
        let response: DeleteRangeResponse = try await call("/kv/deleterange", DeleteRangeRequest(key: JSONBytes(key)))
        return Int(response.deleted?.value ?? 0)
    }

    // MARK: - HTTP

    func makeRequest(_ path: String, body: some Encodable) throws -> HTTPClientRequest {
        var request = HTTPClientRequest(url: endpoint + apiPrefix + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        return request
    }

    /// One unary call; `lease` names the lease that a "lease not found" error is about.
    private func call<Response: Decodable>(_ path: String, _ body: some Encodable, lease: LeaseID? = nil) async throws -> Response {
        do {
            return try decode(try await post(path, body), path: path)
        } catch let error as EtcdError {
            if case .requestFailed(_, _, let message) = error, let lease, message.contains("lease not found") {
                throw EtcdError.leaseNotFound(lease)
            }
            throw error
        }
    }

    /// POSTs `body` and returns the response body; throws `EtcdError` for HTTP errors.
    private func post(_ path: String, _ body: some Encodable) async throws -> [UInt8] {
        let request = try makeRequest(path, body: body)
        let (status, bytes) = try await withDeadline(requestTimeout, onTimeout: unreachable("no answer within \(requestTimeout)")) {
            do {
                let response = try await httpClient.execute(request, timeout: .nanoseconds(requestTimeout.nanoseconds))
                var buffer = try await response.body.collect(upTo: 64 << 20)
                return (Int(response.status.code), buffer.readBytes(length: buffer.readableBytes) ?? [])
            } catch let error as CancellationError {
                throw error
            } catch let error as EtcdError {
                throw error
            } catch {
                if Task.isCancelled { throw CancellationError() }
                throw unreachable(String(describing: error))
            }
        }
        guard status == 200 else { throw gatewayError(path: path, status: status, body: bytes) }
        return bytes
    }

    func unreachable(_ reason: String) -> EtcdError {
        .unreachable(endpoint: endpoint, reason: reason)
    }

    func gatewayError(path: String, status: Int, body: [UInt8]) -> EtcdError {
        let parsed = try? JSONDecoder().decode(GatewayError.self, from: Data(body))
        let message = parsed?.message ?? parsed?.error ?? String(decoding: body.prefix(300), as: UTF8.self)
        return .requestFailed(path: path, status: status, message: message)
    }

    func decode<T: Decodable>(_ bytes: some Collection<UInt8>, path: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            let text = String(decoding: bytes.prefix(200), as: UTF8.self)
            throw EtcdError.badResponse(path: path, reason: "\(error) in \(text)")
        }
    }
}

/// Splits a body of newline-delimited JSON objects.
func splitLines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
    bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// Runs `operation`, throwing `onTimeout` if it has not finished within `timeout`.
func withDeadline<T: Sendable>(_ timeout: Duration, onTimeout: @autoclosure @escaping @Sendable () -> Error,
                               _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw onTimeout()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}
