import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// What can go wrong while benchmarking.
public enum LoadGenError: Error, CustomStringConvertible, Sendable, Equatable {
    case badEndpoint(String)
    case http(status: Int, message: String)
    case stream(String)
    case noModel(String)
    case server(String)

    public var description: String {
        switch self {
        case .badEndpoint(let s): return "bad endpoint URL: \(s)"
        case .http(let status, let message): return "HTTP \(status): \(message)"
        case .stream(let s): return "stream error: \(s)"
        case .noModel(let s): return "no model: \(s)"
        case .server(let s): return "server: \(s)"
        }
    }
}

/// A served model as `/v1/models` lists it.
public struct ModelInfo: Sendable, Equatable {
    public var id: String
    /// Longest prompt plus answer, when the server says (vLLM and memserve do).
    public var maxModelLen: Int?
}

/// Sampling and protocol choices sent with every request.
public struct RequestSettings: Sendable, Codable, Equatable {
    /// Ask the server to generate exactly `max_tokens` tokens (vLLM, memserve and llama.cpp
    /// accept `ignore_eos`), so answer lengths are the workload's on every server.
    public var ignoreEOS = true
    /// 0: greedy, so a seed reproduces the answers and with them the next prompts.
    public var temperature = 0.0

    public init(ignoreEOS: Bool = true, temperature: Double = 0) {
        self.ignoreEOS = ignoreEOS
        self.temperature = temperature
    }
}

/// What one streamed request measured, from the client's side.
public struct RequestOutcome: Sendable, Equatable {
    public var answer = ""
    /// Request sent to first non-empty content chunk.
    public var ttftMs = 0.0
    /// Request sent to end of stream.
    public var jctMs = 0.0
    public var outputTokens = 0
    public var promptTokens: Int?
    public var cachedTokens: Int?
    public var error: String?

    /// Time per output token after the first: (JCT - TTFT) / (tokens - 1); nil below two tokens.
    public var tpotMs: Double? { outputTokens > 1 ? (jctMs - ttftMs) / Double(outputTokens - 1) : nil }
}

/// A streaming client of an OpenAI-compatible endpoint (`/v1/models`, `/v1/chat/completions`,
/// `/v1/completions`, `/health`).
public final class OpenAIClient: Sendable {
    public let base: String
    let apiKey: String?
    let http: HTTPClient

    /// `endpoint` is the server's root (`http://host:port`) or its `/v1` URL.
    public init(endpoint: String, apiKey: String? = nil) throws {
        var s = endpoint.trimmingCharacters(in: .whitespaces)
        while s.hasSuffix("/") { s.removeLast() }
        if s.hasSuffix("/v1") { s.removeLast(3) }
        guard let url = URL(string: s), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw LoadGenError.badEndpoint(endpoint)
        }
        base = s
        self.apiKey = apiKey
        var configuration = HTTPClient.Configuration()
        // The default pool (8 connections per host) would queue requests in the client and
        // count the wait as server latency.
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 1024)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(900))
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    private func request(_ path: String, method: HTTPMethod = .GET, body: Data? = nil) -> HTTPClientRequest {
        var r = HTTPClientRequest(url: base + path)
        r.method = method
        if let apiKey { r.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        if let body {
            r.headers.add(name: "Content-Type", value: "application/json")
            r.body = .bytes(ByteBuffer(bytes: body))
        }
        return r
    }

    private func get(_ path: String) async throws -> (Int, Data) {
        let response = try await http.execute(request(path), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        return (Int(response.status.code), Data(body.readableBytesView))
    }

    /// The models the endpoint serves.
    public func models() async throws -> [ModelInfo] {
        let (status, data) = try await get("/v1/models")
        guard status == 200 else { throw LoadGenError.http(status: status, message: Self.errorMessage(data)) }
        struct List: Decodable {
            struct Card: Decodable {
                var id: String
                var max_model_len: Int?
            }
            var data: [Card]
        }
        do {
            return try JSONDecoder().decode(List.self, from: data).data.map { ModelInfo(id: $0.id, maxModelLen: $0.max_model_len) }
        } catch {
            throw LoadGenError.noModel("cannot read /v1/models: \(error)")
        }
    }

    /// Whether `/health` answers 200.
    public func healthy() async -> Bool {
        guard let (status, _) = try? await get("/health") else { return false }
        return status == 200
    }

    /// Sends `prompt` with streaming and measures it; failures are returned in `error`.
    public func stream(_ prompt: Prompt, model: String, maxTokens: Int, settings: RequestSettings) async -> RequestOutcome {
        var body = RequestBody(model: model, max_tokens: maxTokens, ignore_eos: settings.ignoreEOS ? true : nil,
                               temperature: settings.temperature)
        let path: String
        switch prompt {
        case .chat(let messages):
            body.messages = messages
            path = "/v1/chat/completions"
        case .text(let text):
            body.prompt = text
            path = "/v1/completions"
        }
        var outcome = RequestOutcome()
        let clock = ContinuousClock()
        let start = clock.now
        func ms(_ d: Duration) -> Double {
            Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        }
        do {
            let encoded = try JSONEncoder().encode(body)
            let response = try await http.execute(request(path, method: .POST, body: encoded), timeout: .seconds(900))
            guard response.status == .ok else {
                let data = try await response.body.collect(upTo: 1 << 20)
                outcome.error = LoadGenError.http(status: Int(response.status.code), message: Self.errorMessage(Data(data.readableBytesView))).description
                outcome.jctMs = ms(clock.now - start)
                return outcome
            }
            var parser = SSEParser()
            var reader = StreamReader()
            for try await buffer in response.body {
                for event in parser.feed(buffer.readableBytesView) {
                    try reader.take(event, at: clock.now)
                }
                if reader.done { break }
            }
            for event in parser.finish() { try reader.take(event, at: clock.now) }
            let end = clock.now
            outcome.answer = reader.answer
            outcome.outputTokens = reader.completionTokens ?? reader.contentChunks
            outcome.promptTokens = reader.promptTokens
            outcome.cachedTokens = reader.cachedTokens
            outcome.jctMs = ms(end - start)
            outcome.ttftMs = reader.firstContent.map { ms($0 - start) } ?? outcome.jctMs
            if !reader.done && reader.finishReason == nil { outcome.error = LoadGenError.stream("the stream ended without [DONE]").description }
        } catch let e as LoadGenError {
            outcome.error = e.description
            outcome.jctMs = ms(clock.now - start)
        } catch {
            outcome.error = "\(error)"
            outcome.jctMs = ms(clock.now - start)
        }
        return outcome
    }

    static func errorMessage(_ data: Data) -> String {
        if let chunk = try? JSONDecoder().decode(StreamChunk.self, from: data), let m = chunk.error?.message { return m }
        return String(decoding: data.prefix(500), as: UTF8.self)
    }
}

struct RequestBody: Encodable {
    struct StreamOptions: Encodable { var include_usage = true }
    var model: String
    var messages: [ChatMessage]?
    var prompt: String?
    var max_tokens: Int
    var stream = true
    var stream_options = StreamOptions()
    var ignore_eos: Bool?
    var temperature: Double
}

/// One `data:` payload of an OpenAI stream (chat chunk or text completion).
struct StreamChunk: Decodable {
    struct Choice: Decodable {
        struct Delta: Decodable { var content: String? }
        var delta: Delta?
        var text: String?
        var finish_reason: String?
    }
    struct Usage: Decodable {
        struct Details: Decodable { var cached_tokens: Int? }
        var prompt_tokens: Int?
        var completion_tokens: Int?
        var prompt_tokens_details: Details?
    }
    /// `{"error": {"message": ...}}` or `{"error": "..."}`.
    struct ErrorBody: Decodable {
        var message: String?
        init(from decoder: any Decoder) throws {
            if let s = try? decoder.singleValueContainer().decode(String.self) {
                message = s
                return
            }
            struct Object: Decodable { var message: String? }
            message = try Object(from: decoder).message ?? "unknown error"
        }
    }
    var choices: [Choice]?
    var usage: Usage?
    var error: ErrorBody?
}

/// Folds the events of one stream into its answer, token counts and first-token time.
struct StreamReader {
    var answer = ""
    var contentChunks = 0
    var firstContent: ContinuousClock.Instant?
    var promptTokens: Int?
    var completionTokens: Int?
    var cachedTokens: Int?
    var finishReason: String?
    var done = false

    mutating func take(_ event: SSEParser.Event, at now: ContinuousClock.Instant) throws {
        let data = event.data.trimmingCharacters(in: .whitespaces)
        if data == "[DONE]" {
            done = true
            return
        }
        guard !data.isEmpty else { return }
        let chunk: StreamChunk
        do {
            chunk = try JSONDecoder().decode(StreamChunk.self, from: Data(data.utf8))
        } catch {
            throw LoadGenError.stream("unreadable event: \(data.prefix(200))")
        }
        if let e = chunk.error { throw LoadGenError.stream(e.message ?? "unknown error") }
        for choice in chunk.choices ?? [] {
            let piece = (choice.delta?.content ?? "") + (choice.text ?? "")
            if !piece.isEmpty {
                if firstContent == nil { firstContent = now }
                answer += piece
                contentChunks += 1
            }
            if let r = choice.finish_reason { finishReason = r }
        }
        if let u = chunk.usage {
            promptTokens = u.prompt_tokens ?? promptTokens
            completionTokens = u.completion_tokens ?? completionTokens
            cachedTokens = u.prompt_tokens_details?.cached_tokens ?? cachedTokens
        }
    }
}
