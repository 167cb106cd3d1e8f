import Foundation
import GGUF
import Hummingbird
import HummingbirdTesting
import Model
import Serving
import Synchronization
import Testing
@testable import Server

/// A backend that answers each request with one token, but only once the test opens it: load
/// tests can hold any number of requests in flight without timing games.
final class GatedBackend: InferenceBackend {
    struct Waiting {
        var id: Serving.RequestID
        var promptTokens: Int
        var continuation: AsyncThrowingStream<RequestOutput, any Error>.Continuation
    }

    struct State {
        var nextID: Serving.RequestID = 1
        var isOpen = false
        var waiting: [Waiting] = []
        var submitted = 0
    }

    let servedModel: ServedModel
    private let state = Mutex(State())

    init(maxContext: Int = 512) throws {
        servedModel = try ServedModel(file: GGUFFile(bytes: SyntheticModel.gguf(SyntheticModel.Shape())), name: "synthetic",
                                      maxContext: maxContext)
    }

    var submitted: Int { state.withLock { $0.submitted } }

    func submit(_ request: ServingRequest) throws(EngineError) -> (Serving.RequestID, AsyncThrowingStream<RequestOutput, any Error>) {
        let (stream, continuation) = AsyncThrowingStream<RequestOutput, any Error>.makeStream()
        let entry = state.withLock { s -> Waiting? in
            let w = Waiting(id: s.nextID, promptTokens: request.promptTokens.count, continuation: continuation)
            s.nextID += 1
            s.submitted += 1
            if s.isOpen { return w }
            s.waiting.append(w)
            return nil
        }
        if let entry { Self.answer(entry) }
        return (state.withLock { $0.nextID - 1 }, stream)
    }

    /// Answers every held request and every later one at once.
    func open() {
        let held = state.withLock { s -> [Waiting] in
            s.isOpen = true
            defer { s.waiting = [] }
            return s.waiting
        }
        held.forEach(Self.answer)
    }

    private static func answer(_ w: Waiting) {
        w.continuation.yield(RequestOutput(id: w.id, token: 65, text: "A", finishReason: .length, promptTokens: w.promptTokens,
                                           cachedTokens: 0, generatedTokens: 1))
        w.continuation.finish()
    }

    var stats: EngineStats { EngineStats() }
    func shutdown() {}
    func abort(_ id: Serving.RequestID) {
        let w = state.withLock { s -> Waiting? in
            guard let i = s.waiting.firstIndex(where: { $0.id == id }) else { return nil }
            return s.waiting.remove(at: i)
        }
        w?.continuation.finish()
    }
    var isStopped: Bool { false }
    var tokenCapacity: Int { 0 }
    func run() async throws {}
}

extension TestClientProtocol {
    func post(_ uri: String, _ json: String, headers extra: HTTPFields) async throws -> TestResponse {
        var headers = extra
        headers[.contentType] = "application/json"
        return try await execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: json))
    }
}

/// The HTTP edge's own rules: bounded load (429), API keys (401), oversized bodies (413, closed).
@Suite("HTTP edge: load limits, API keys, oversized bodies")
struct EdgeTests {
    static let chat = #"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":1,"stream":true}"#

    static func server(_ backend: GatedBackend, limits: LoadLimits = LoadLimits(), keys: [String] = [],
                       metricsRequireKey: Bool = false) -> MemServeServer {
        MemServeServer(engine: backend, configuration: ServerConfiguration(
            host: "127.0.0.1", port: 0, limits: limits, apiKeys: APIKeys(keys), metricsRequireKey: metricsRequireKey),
            registry: PrometheusBootstrap.registry())
    }

    static func checkErrorBody(_ r: TestResponse, type: String? = nil, code: String?) {
        let error = r.json.object("error")
        #expect(error != nil, "\(r.status): \(r.text)")
        guard let error else { return }
        #expect(Set(error.keys).isSuperset(of: ["message", "type", "param", "code"]), "\(r.text)")
        if let type { #expect(error.string("type") == type, "\(r.text)") }
        #expect(error.string("code") == code, "\(r.text)")
    }

    /// Waits (10 ms polls, bounded) for the backend to hold `count` requests.
    static func held(_ backend: GatedBackend, _ count: Int) async -> Bool {
        await eventually(60) { backend.submitted >= count }
    }

    @Test("at the request limit, excess requests get 429 with Retry-After; the streams held up to it all finish",
          arguments: [64, 256])
    func requestLimit(streams: Int) async throws {
        let backend = try GatedBackend()
        let server = Self.server(backend, limits: LoadLimits(maxRequests: streams, maxTokens: 1 << 20, retryAfterSeconds: 2))
        try await server.makeApplication().test(.router) { client in
            try await withThrowingTaskGroup(of: TestResponse.self) { group in
                for _ in 0..<streams { group.addTask { try await client.post("/v1/chat/completions", Self.chat) } }
                #expect(await Self.held(backend, streams))
                for body in [Self.chat, #"{"prompt":"x","max_tokens":1}"#] {
                    let uri = body.contains("messages") ? "/v1/chat/completions" : "/v1/completions"
                    let refused = try await client.post(uri, body)
                    #expect(refused.status == .tooManyRequests)
                    #expect(refused.headers[.retryAfter] == "2")
                    Self.checkErrorBody(refused, type: "requests", code: "rate_limit_exceeded")
                }
                #expect(backend.submitted == streams, "a refused request reached the backend")
                backend.open()
                var ok = 0
                for try await r in group {
                    #expect(r.status == .ok)
                    #expect(r.events.last == "[DONE]")
                    if r.status == .ok { ok += 1 }
                }
                #expect(ok == streams)
            }
            // Every admitted request gave its share back.
            let after = try await client.post("/v1/chat/completions", Self.chat)
            #expect(after.status == .ok)
        }
    }

    @Test("64 concurrent streams over real sockets through the synthetic engine all finish, none refused")
    func concurrentStreamsLive() async throws {
        let harness = try Harness.make(blocks: 1040, limits: LoadLimits(maxRequests: 64))
        try await harness.withLiveServer { port in
            let answers = try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<64 {
                    group.addTask {
                        try await onThread {
                            let connection = try RawConnection(port: port)
                            defer { connection.close() }
                            connection.sendPOST("/v1/chat/completions", json: #"{"messages":[{"role":"user","content":"Hi \#(i)"}],"max_tokens":8,"ignore_eos":true,"stream":true}"#)
                            return connection.readToEnd()
                        }
                    }
                }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(answers.count == 64)
            for answer in answers {
                #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer.prefix(300))")
                #expect(answer.contains("data: [DONE]"), "\(answer.suffix(300))")
            }
            let engine = harness.engine
            #expect(await eventually(30) { engine.stats.running + engine.stats.waiting == 0 })
        }
    }

    @Test("past the prompt-token limit requests get 429 of type tokens; one request alone always fits")
    func tokenLimit() async throws {
        let backend = try GatedBackend()
        let server = Self.server(backend, limits: LoadLimits(maxRequests: 100, maxTokens: 10))
        let long = #"{"prompt":"\#(String(repeating: "ab ", count: 20))","max_tokens":1}"#
        try await server.makeApplication().test(.router) { client in
            try await withThrowingTaskGroup(of: TestResponse.self) { group in
                // Larger than the limit by itself: admitted, since nothing else is held.
                group.addTask { try await client.post("/v1/completions", long) }
                #expect(await Self.held(backend, 1))
                let refused = try await client.post("/v1/completions", #"{"prompt":"x","max_tokens":1}"#)
                #expect(refused.status == .tooManyRequests)
                #expect(refused.headers[.retryAfter] == "1")
                Self.checkErrorBody(refused, type: "tokens", code: "rate_limit_exceeded")
                backend.open()
                for try await r in group { #expect(r.status == .ok) }
            }
            let r1 = try await client.post("/v1/completions", #"{"prompt":"x","max_tokens":1}"#)
            #expect(r1.status == .ok)
        }
    }

    @Test("a client that leaves mid-stream gives its admission back")
    func releaseOnDisconnect() async throws {
        // One request at a time: a share not given back would refuse the next request.
        let harness = try Harness.make(contextLength: 16384, maxContext: 16384, blocks: 1040,
                                       limits: LoadLimits(maxRequests: 1))
        try await harness.withLiveServer { port in
            let connection = try RawConnection(port: port)
            connection.sendPOST("/v1/completions", json: #"{"prompt":"Count:","max_tokens":16000,"ignore_eos":true,"stream":true}"#)
            _ = try await onThread { connection.read(until: "\"text\"") }
            connection.close()
            let engine = harness.engine
            #expect(await eventually(30) { engine.stats.running + engine.stats.waiting == 0 })
            // The admitted count is back to zero: a new request is admitted and served.
            let again = try RawConnection(port: port)
            again.sendPOST("/v1/completions", json: #"{"prompt":"Hi","max_tokens":2}"#)
            let answer = try await onThread { again.readToEnd() }
            again.close()
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer.prefix(300))")
        }
    }

    @Test("API keys: 401 with invalid_api_key without or with a wrong key, 200 with a right one; /health open")
    func apiKeys() async throws {
        let backend = try GatedBackend()
        backend.open()
        let server = Self.server(backend, keys: ["sk-one", "sk-two"])
        try await server.makeApplication().test(.router) { client in
            let body = #"{"prompt":"x","max_tokens":1}"#
            let missing = try await client.post("/v1/completions", body)
            #expect(missing.status == .unauthorized)
            #expect(missing.headers[.wwwAuthenticate] == "Bearer")
            Self.checkErrorBody(missing, type: "invalid_request_error", code: "invalid_api_key")
            for header in ["Bearer sk-on", "Bearer sk-one1", "Bearer ", "Basic sk-one", "sk-one", "Bearer SK-ONE"] {
                let r = try await client.post("/v1/completions", body, headers: [.authorization: header])
                #expect(r.status == .unauthorized, "\(header)")
                Self.checkErrorBody(r, code: "invalid_api_key")
            }
            for header in ["Bearer sk-one", "Bearer sk-two", "bearer sk-two", "Bearer  sk-one"] {
                let r = try await client.post("/v1/completions", body, headers: [.authorization: header])
                #expect(r.status == .ok, "\(header): \(r.text)")
            }
            let r2 = try await client.get("/v1/models")
            #expect(r2.status == .unauthorized)
            let r3 = try await client.get("/debug/trees")
            #expect(r3.status == .unauthorized)
            let r4 = try await client.get("/health")
            #expect(r4.status == .ok)
            let r5 = try await client.get("/metrics")
            #expect(r5.status == .ok)
            let models = try await client.execute(uri: "/v1/models", method: .get, headers: [.authorization: "Bearer sk-two"])
            #expect(models.status == .ok)
        }
    }

    @Test("--metrics-require-key closes /metrics too; /health stays open")
    func metricsKey() async throws {
        let backend = try GatedBackend()
        let server = Self.server(backend, keys: ["k"], metricsRequireKey: true)
        try await server.makeApplication().test(.router) { client in
            let r6 = try await client.get("/metrics")
            #expect(r6.status == .unauthorized)
            let r7 = try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer k"])
            #expect(r7.status == .ok)
            let r8 = try await client.get("/health")
            #expect(r8.status == .ok)
        }
    }

    @Test("no keys configured (or only blank ones): no authentication")
    func noKeys() async throws {
        let backend = try GatedBackend()
        backend.open()
        try await Self.server(backend, keys: [""]).makeApplication().test(.router) { client in
            let r9 = try await client.post("/v1/completions", #"{"prompt":"x","max_tokens":1}"#)
            #expect(r9.status == .ok)
        }
    }

    @Test("key comparison: exact bytes only, every length")
    func keyComparison() {
        let keys = APIKeys(["secret", "other-key"])
        #expect(keys.accepts("secret".utf8))
        #expect(keys.accepts("other-key".utf8))
        for wrong in ["", "s", "secre", "secret ", "secreT", "secretsecret", "other-ke", "other-key-"] {
            #expect(!keys.accepts(wrong.utf8), "\(wrong)")
        }
        #expect(APIKeys(["", "a"]).isEmpty == false)
        #expect(APIKeys([""]).isEmpty)
        #expect(APIKeys.bearerToken("Bearer abc") == "abc")
        #expect(APIKeys.bearerToken("BEARER abc") == "abc")
        #expect(APIKeys.bearerToken("Bearer") == nil)
        #expect(APIKeys.bearerToken("Token abc") == nil)
    }

    @Test("a body over the limit gets 413 and the connection is closed at once, even when the client sends it all first")
    func oversizedBodyCloses() async throws {
        let harness = try Harness.make(maxBodyBytes: 4096)
        try await harness.withLiveServer { port in
            for declared in [true, false] {
                let connection = try RawConnection(port: port)
                let json = #"{"prompt":"\#(String(repeating: "x", count: 200_000))"}"#
                let start = Date()
                let answer = try await onThread { () -> String in
                    if declared {
                        // Keep-alive, whole body written before reading, as the user's client did.
                        connection.sendPOST("/v1/completions", json: json, keepAlive: true)
                    } else {
                        // Chunked: the size is learned only while reading.
                        var request = Array("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
                        for chunk in stride(from: 0, to: json.utf8.count, by: 8192) {
                            let part = Array(json.utf8)[chunk..<min(chunk + 8192, json.utf8.count)]
                            request += Array((String(part.count, radix: 16) + "\r\n").utf8) + part + Array("\r\n".utf8)
                        }
                        request += Array("0\r\n\r\n".utf8)
                        connection.send(request)
                    }
                    return connection.readToEnd()
                }
                connection.close()
                let elapsed = Date().timeIntervalSince(start)
                #expect(answer.hasPrefix("HTTP/1.1 413"), "\(answer.prefix(200))")
                #expect(answer.lowercased().contains("connection: close"), "\(answer.prefix(400))")
                #expect(answer.contains(#""code":"request_too_large""#))
                #expect(elapsed < 15, "the connection stayed open \(elapsed) s after the 413")
            }
            // The server still serves.
            let next = try RawConnection(port: port)
            next.sendPOST("/v1/completions", json: #"{"prompt":"Hi","max_tokens":2}"#)
            let ok = try await onThread { next.readToEnd() }
            next.close()
            #expect(ok.hasPrefix("HTTP/1.1 200"))
        }
    }
}
