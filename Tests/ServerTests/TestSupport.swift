import Engine
import Foundation
import GGUF
import Hummingbird
import HummingbirdTesting
import Model
@testable import Server
#if canImport(Glibc)
import Glibc
#endif

/// A server over a tiny random-weight model (ChatML tokens, byte-level vocabulary).
struct Harness {
    let engine: EngineService
    let server: MemServeServer

    static func make(contextLength: Int = 512, maxContext: Int = 256, blocks: Int = 64, maxBodyBytes: Int = 4 << 20,
                     prefixCaching: Bool = true, servedModelNames: [String] = [], limits: LoadLimits = LoadLimits(),
                     chatTemplate: String? = SyntheticModel.chatMLTemplate) throws -> Harness {
        // Before the engine: its metrics bind to the backend when it is created.
        let registry = PrometheusBootstrap.registry()
        var options = ModelOptions()
        options.maxBatchTokens = 64
        options.maxContext = maxContext
        options.maxLogitRows = 16
        var shape = SyntheticModel.Shape()
        shape.contextLength = contextLength
        shape.chatTemplate = chatTemplate
        let model = try LoadedModel(file: GGUFFile(bytes: SyntheticModel.gguf(shape)), name: "synthetic", options: options, threads: 1)
        var scheduler = SchedulerConfiguration()
        scheduler.prefixCaching = prefixCaching
        let engine = EngineService(model: model, memPool: try model.makeMemPool(hotBlocks: blocks), configuration: scheduler)
        let server = MemServeServer(engine: engine, configuration: ServerConfiguration(host: "127.0.0.1", port: 0, maxBodyBytes: maxBodyBytes,
                                                                                     servedModelNames: servedModelNames, limits: limits),
                                    registry: registry)
        return Harness(engine: engine, server: server)
    }

    /// Runs `body` against the router (no sockets), then stops the engine.
    func withRouter<T: Sendable>(_ body: @Sendable (any TestClientProtocol) async throws -> T) async throws -> T {
        defer { engine.shutdown() }
        return try await server.makeApplication().test(.router, body)
    }

    /// Runs the whole service group (app and engine) on a free loopback port.
    func withLiveServer<T: Sendable>(_ body: @Sendable (Int) async throws -> T) async throws -> T {
        let (ports, portSink) = AsyncStream<Int>.makeStream()
        let group = server.makeServiceGroup(handleSignals: false) { port in portSink.yield(port) }
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var it = ports.makeAsyncIterator()
            guard let port = await it.next() else { throw TestFailure("server did not start") }
            do {
                let value = try await body(port)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return value
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension TestClientProtocol {
    /// POSTs a JSON body (given as text, so malformed bodies can be sent too).
    func post(_ uri: String, _ json: String, contentType: String? = "application/json") async throws -> TestResponse {
        var headers = HTTPFields()
        if let contentType { headers[.contentType] = contentType }
        return try await execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: json))
    }

    func get(_ uri: String) async throws -> TestResponse {
        try await execute(uri: uri, method: .get)
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }

    /// The body as a JSON object (empty if it is not one).
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    /// The `data:` payloads of a server-sent-event body, in order.
    var events: [String] { SSE.payloads(text) }
}

enum SSE {
    static func payloads(_ text: String) -> [String] {
        text.components(separatedBy: "\n\n").compactMap { event in
            event.hasPrefix("data: ") ? String(event.dropFirst(6)) : nil
        }
    }

    static func object(_ payload: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(payload.utf8))) as? [String: Any] ?? [:]
    }
}

/// JSON helpers for `[String: Any]` trees.
extension Dictionary where Key == String, Value == Any {
    func object(_ key: String) -> [String: Any]? { self[key] as? [String: Any] }
    func array(_ key: String) -> [[String: Any]]? { self[key] as? [[String: Any]] }
    func int(_ key: String) -> Int? { (self[key] as? NSNumber)?.intValue }
    func string(_ key: String) -> String? { self[key] as? String }
    func isNull(_ key: String) -> Bool { self[key] is NSNull }
}

/// Runs blocking work on its own thread, so it never occupies the cooperative pool the server's
/// handlers need (two cores here).
func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            do { continuation.resume(returning: try work()) } catch { continuation.resume(throwing: error) }
        }
        thread.start()
    }
}

/// A blocking HTTP/1.1 client on a raw socket: lets a test hang up mid-response.
final class RawConnection: @unchecked Sendable {
    private let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket failed") }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            Glibc.close(fd)
            throw TestFailure("connect failed: \(errno)")
        }
    }

    func sendPOST(_ path: String, json: String, keepAlive: Bool = false) {
        let request = "POST \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(json.utf8.count)\r\n\(keepAlive ? "" : "Connection: close\r\n")\r\n" + json
        send(Array(request.utf8))
    }

    /// Sends `bytes` as they are (any request, well-formed or not); stops at the first failure.
    func send(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    /// Reads until `marker` has arrived (or EOF / timeout); returns everything read.
    func read(until marker: String) -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            received.append(contentsOf: buffer[0..<n])
            if String(decoding: received, as: UTF8.self).contains(marker) { break }
        }
        return String(decoding: received, as: UTF8.self)
    }

    func readToEnd() -> String { read(until: "\u{0}never\u{0}") }

    /// Ends our side of the connection (the server sees EOF) but keeps reading.
    func finishSending() { shutdown(fd, Int32(SHUT_WR)) }

    /// Everything until the server closes; `timedOut` when it neither answered nor closed
    /// within the receive timeout.
    func readAll() -> (bytes: [UInt8], timedOut: Bool) {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return (received, false) }
            if n < 0 { return (received, errno == EAGAIN || errno == EWOULDBLOCK) }
            received.append(contentsOf: buffer[0..<n])
        }
    }

    /// Shrinks the socket's receive buffer, so a client that stops reading soon stops the
    /// server's writes to it.
    func setReceiveBuffer(bytes: Int32) {
        var size = bytes
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Shortens the receive timeout (the default is 20 s).
    func setReceiveTimeout(seconds: Int) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    func close() { Glibc.close(fd) }
}

/// Polls `condition` every 10 ms for up to `seconds`.
func eventually(_ seconds: Double, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
