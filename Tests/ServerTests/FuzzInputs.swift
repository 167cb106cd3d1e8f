import Foundation
import Hummingbird
@testable import Server

// Seeded generators of hostile HTTP requests for the fuzz tests: every endpoint, bodies built
// from a valid request and then broken (wrong types, huge and negative numbers, NaN, null
// content, unknown fields, truncation, invalid UTF-8, empty and multi-megabyte prompts), and
// headers (content types, keys, sessions). Deterministic for a seed, so a failure reproduces.

/// SplitMix64: a fixed, tiny generator, so a seed means the same request on every platform.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
    mutating func pick<T>(_ options: [T]) -> T { options.randomElement(using: &self)! }
    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
}

/// A JSON value as text, so values JSON cannot hold (NaN, 1e999) can be written too.
indirect enum FuzzJSON {
    case literal(String)
    case string(String)
    case array([FuzzJSON])
    case object([(String, FuzzJSON)])

    var text: String {
        switch self {
        case let .literal(t): t
        case let .string(s): Self.quote(s)
        case let .array(items): "[" + items.map(\.text).joined(separator: ",") + "]"
        case let .object(fields): "{" + fields.map { Self.quote($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    subscript(key: String) -> FuzzJSON? {
        get {
            guard case let .object(fields) = self else { return nil }
            return fields.first { $0.0 == key }?.1
        }
        set {
            guard case var .object(fields) = self else { return }
            fields.removeAll { $0.0 == key }
            if let newValue { fields.append((key, newValue)) }
            self = .object(fields)
        }
    }
}

/// One fuzzed request and how it was made (printed when a check fails).
struct FuzzRequest: Sendable, CustomStringConvertible {
    var method: HTTPRequest.Method
    var uri: String
    var headers: HTTPFields
    var body: [UInt8]
    var recipe: [String]
    var seed: UInt64

    var isGeneration: Bool { method == .post && (uri.hasPrefix("/v1/completions") || uri.hasPrefix("/v1/chat/completions")) }

    var description: String {
        let preview = String(decoding: body.prefix(300), as: UTF8.self)
        return "seed \(seed): \(method.rawValue) \(uri) [\(recipe.joined(separator: "; "))] \(body.count) bytes: \(preview)"
    }
}

enum FuzzInputs {
    static let numbers = ["0", "1", "-1", "2", "16", "255", "256", "257", "100000", "1000000000000", "-1000000000000",
                          "2147483647", "2147483648", "-2147483649", "9223372036854775807", "-9223372036854775808",
                          "9223372036854775808", "92233720368547758070", "1e12", "1e40", "1e999", "-1e999", "1.5", "0.5",
                          "-0", "-0.0", "2.5e-10", "NaN", "Infinity", "-Infinity", "nan", "0x10", "01", "+1", "1.", ".5"]
    static let strings = ["", " ", "hi", "Hello there", "\u{0}", "\u{7}\u{1b}[31m", "é", "日本語", "👩‍👩‍👧‍👦🏳️‍🌈",
                          "\u{202E}reversed", "<|im_start|>system\nx<|im_end|>", "\\ud800", "null", "true", "{}", "../../etc/passwd"]
    static let fields = ["model", "prompt", "messages", "max_tokens", "max_completion_tokens", "n", "logprobs", "top_logprobs",
                         "temperature", "top_p", "top_k", "min_p", "frequency_penalty", "presence_penalty", "repetition_penalty",
                         "seed", "stop", "stream", "stream_options", "ignore_eos", "logit_bias", "user", "echo", "best_of",
                         "suffix", "tools", "functions", "response_format", "an_unknown_field", ""]
    static let roles = ["user", "assistant", "system", "developer", "tool", "function", "", "USER", "wizard"]
    static let contentTypes: [String?] = ["application/json", "application/json", "application/json; charset=utf-8", nil,
                                          "APPLICATION/JSON", "application/vnd.api+json", "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/jsonx", ";", "*/*"]

    static func value(_ g: inout SplitMix, depth: Int = 0) -> FuzzJSON {
        switch g.int(0...9) {
        case 0...2: return .literal(g.pick(numbers))
        case 3...4: return .string(g.pick(strings))
        case 5: return .literal(g.pick(["null", "true", "false"]))
        case 6: return .string(randomText(&g, length: g.int(0...40)))
        case 7 where depth < 3: return .array((0..<g.int(0...4)).map { _ in value(&g, depth: depth + 1) })
        case 8 where depth < 3:
            return .object((0..<g.int(0...3)).map { _ in (g.pick(fields + ["type", "text", "include_usage"]), value(&g, depth: depth + 1)) })
        default: return .literal(String(g.int(-3...300)))
        }
    }

    static func randomText(_ g: inout SplitMix, length: Int) -> String {
        var s = String.UnicodeScalarView()
        for _ in 0..<length {
            let v: UInt32 = switch g.int(0...9) {
            case 0: UInt32(g.int(0...0x1F))
            case 1: UInt32(g.int(0x80...0x7FF))
            case 2: UInt32(g.int(0x1F300...0x1FAFF))
            default: UInt32(g.int(0x20...0x7E))
            }
            if let scalar = Unicode.Scalar(v) { s.append(scalar) }
        }
        return String(s)
    }

    static func message(_ g: inout SplitMix) -> FuzzJSON {
        var m = FuzzJSON.object([("role", .string(g.chance(0.8) ? "user" : g.pick(roles)))])
        switch g.int(0...9) {
        case 0: m["content"] = .literal("null")
        case 1: break
        case 2: m["content"] = .array([.object([("type", .string(g.pick(["text", "image_url", ""]))), ("text", value(&g))])])
        case 3: m["content"] = value(&g)
        default: m["content"] = .string(randomText(&g, length: g.int(0...30)))
        }
        if g.chance(0.1) { m[g.pick(["name", "tool_calls", "extra"])] = value(&g) }
        return m
    }

    /// A prompt of `megabytes` (about): repeated words, as real long documents are.
    static func largeText(_ g: inout SplitMix, bytes: Int) -> String {
        let words = (0..<64).map { _ in randomText(&g, length: g.int(1...9)).replacingOccurrences(of: "\"", with: "") }
        var out = ""
        out.reserveCapacity(bytes + 16)
        while out.utf8.count < bytes { out += words[g.int(0...63)] + " " }
        return out
    }

    /// A JSON body for `uri`: valid, then broken by one to four mutations.
    static func body(_ g: inout SplitMix, chat: Bool, recipe: inout [String]) -> [UInt8] {
        var j: FuzzJSON = chat
            ? .object([("model", .string("synthetic")), ("messages", .array([.object([("role", .string("user")), ("content", .string("Hi"))])])),
                       ("max_tokens", .literal("3"))])
            : .object([("model", .string("synthetic")), ("prompt", .string("Hello")), ("max_tokens", .literal("3"))])
        for _ in 0..<g.int(0...4) {
            switch g.int(0...11) {
            case 0...3:
                let field = g.pick(fields)
                let v = value(&g)
                recipe.append("\(field)=\(v.text.prefix(40))")
                j[field] = v
            case 4:
                let field = g.pick(fields)
                recipe.append("-\(field)")
                j[field] = nil
            case 5:
                let messages = (0..<g.int(0...5)).map { _ in message(&g) }
                recipe.append("messages×\(messages.count)")
                j["messages"] = .array(messages)
            case 6:
                let prompt: FuzzJSON = switch g.int(0...5) {
                case 0: .string("")
                case 1: .array([])
                case 2: .array((0..<g.int(1...6)).map { _ in .literal(g.pick(numbers)) })
                case 3: .array([.array((0..<g.int(0...4)).map { _ in .literal(String(g.int(-5...70000))) })])
                case 4: .array((0..<g.int(1...3)).map { _ in .string(randomText(&g, length: 5)) })
                default: .string(randomText(&g, length: g.int(1...200)))
                }
                recipe.append("prompt=\(prompt.text.prefix(40))")
                j["prompt"] = prompt
            case 7:
                recipe.append("stream")
                j["stream"] = .literal("true")
                if g.chance(0.5) { j["stream_options"] = .object([("include_usage", .literal(g.pick(["true", "false", "1", "null"])))]) }
            case 8 where g.chance(0.15):
                // 1–10 MB: past the 4 MiB body limit they must get 413, below it a context error.
                let size = g.int(1...10) << 20
                recipe.append("large prompt \(size >> 20) MB")
                let text = largeText(&g, bytes: size)
                if chat {
                    j["messages"] = .array([.object([("role", .string("user")), ("content", .string(text))])])
                } else {
                    j["prompt"] = .string(text)
                }
            case 9:
                recipe.append("max_tokens edge")
                j[g.pick(["max_tokens", "max_completion_tokens", "n", "logprobs", "top_logprobs", "best_of"])] = .literal(g.pick(numbers))
            case 10:
                recipe.append("sampling edge")
                j[g.pick(["temperature", "top_p", "top_k", "min_p", "frequency_penalty", "presence_penalty", "repetition_penalty", "seed"])]
                    = .literal(g.pick(numbers))
            default:
                recipe.append("ignore_eos")
                j["ignore_eos"] = .literal(g.pick(["true", "false", "\"yes\"", "1"]))
            }
        }
        var bytes = Array(j.text.utf8)
        if g.chance(0.05) {
            recipe.append("top-level \(g.pick(["array", "string", "number"]))")
            bytes = Array(g.pick(["[1,2]", "\"hi\"", "42", "null", "[]"]).utf8)
        }
        // Byte-level damage after the JSON was written.
        switch g.int(0...19) {
        case 0, 1:
            let cut = g.int(0...max(0, bytes.count - 1))
            recipe.append("truncated at \(cut)")
            bytes = Array(bytes.prefix(cut))
        case 2:
            let at = g.int(0...bytes.count)
            let junk: [UInt8] = g.pick([[0xFF], [0xC3], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0xF8, 0x88, 0x80, 0x80, 0x80], [0x00]])
            recipe.append("invalid UTF-8 \(junk) at \(at)")
            bytes.insert(contentsOf: junk, at: at)
        case 3:
            recipe.append("random bytes")
            bytes = (0..<g.int(1...200)).map { _ in UInt8.random(in: 0...255, using: &g) }
        case 4:
            recipe.append("empty")
            bytes = []
        case 5:
            recipe.append("trailing garbage")
            bytes += Array(g.pick(["}", "{}", " x", "\u{0}", ",\"a\":1"]).utf8)
        case 6:
            let depth = g.pick([100, 600, 5000, 100_000])
            recipe.append("nested \(depth)")
            bytes = Array((String(repeating: "[", count: depth) + String(repeating: "]", count: g.chance(0.5) ? depth : 0)).utf8)
        case 7:
            recipe.append("BOM")
            bytes = [0xEF, 0xBB, 0xBF] + bytes
        default: break
        }
        return bytes
    }

    static let paths = ["/v1/completions", "/v1/chat/completions", "/v1/models", "/v1/models/synthetic", "/v1/models/nope",
                        "/health", "/metrics", "/debug/route", "/debug/trees"]
    static let oddPaths = ["/", "/v1", "/v1/", "/v1/completions/", "/v1//completions", "/v1/models/%FF%FE", "/v1/models/..%2F..%2Fetc%2Fpasswd",
                           "/v1/completions?stream=true", "/V1/COMPLETIONS", "/v1/embeddings", "/v1/models/" + String(repeating: "a", count: 3000),
                           "/health?x=%00", "/metrics/../health"]

    static func request(seed: UInt64) -> FuzzRequest {
        var g = SplitMix(seed: seed)
        var recipe: [String] = []
        var method: HTTPRequest.Method = .post
        var uri: String
        switch g.int(0...19) {
        case 0...8: uri = "/v1/chat/completions"
        case 9...15: uri = "/v1/completions"
        case 16, 17:
            uri = g.pick(paths)
            method = g.pick([.get, .get, .post, .put, .delete, .head, .options, .patch])
        case 18:
            uri = g.pick(oddPaths)
            method = g.pick([.get, .post, .delete])
        default:
            uri = "/debug/route"
        }
        var headers = HTTPFields()
        if method == .post || g.chance(0.1) {
            // Mostly JSON, so most bodies reach the parser and the planner.
            let type = g.chance(0.75) ? "application/json" : g.pick(contentTypes)
            if let type { headers[.contentType] = type }
        }
        if g.chance(0.1) { headers[.authorization] = g.pick(["Bearer", "Bearer x", "Basic Zm9vOmJhcg==", "", String(repeating: "k", count: 4000)]) }
        if g.chance(0.1) { headers[Endpoints.sessionHeader] = randomText(&g, length: g.int(0...50)).filter { $0.isASCII && !$0.isNewline } }
        if g.chance(0.05) { headers[.contentLength] = g.pick(["0", "999999999999", "-1"]) }
        if g.chance(0.05) { headers[.accept] = g.pick(["text/event-stream", "application/xml", "*/*"]) }
        let body = method == .post || g.chance(0.1) ? Self.body(&g, chat: !uri.hasPrefix("/v1/completions"), recipe: &recipe) : []
        return FuzzRequest(method: method, uri: uri, headers: headers, body: body, recipe: recipe, seed: seed)
    }

    /// Raw bytes on a socket: broken HTTP framing and headers that the test client cannot send.
    static func rawRequest(seed: UInt64) -> (bytes: [UInt8], recipe: String) {
        var g = SplitMix(seed: seed)
        let json = #"{"prompt":"Hi","max_tokens":2}"#
        func request(_ headLines: [String], body: String = json) -> [UInt8] {
            Array((headLines.joined(separator: "\r\n") + "\r\n\r\n" + body).utf8)
        }
        let base = ["POST /v1/completions HTTP/1.1", "Host: x", "Content-Type: application/json"]
        switch g.int(0...15) {
        case 0: return (request(base + ["Content-Length: \(json.utf8.count - g.int(1...10))"]), "content-length too short")
        case 1: return (request(base + ["Content-Length: \(json.utf8.count + g.int(1...1000))"]), "content-length too long")
        case 2: return (request(base + ["Content-Length: -5"]), "negative content-length")
        case 3: return (request(base + ["Content-Length: abc"]), "non-numeric content-length")
        case 4: return (request(base + ["Content-Length: 5", "Content-Length: 31"]), "two content-lengths")
        case 5: return (request(base + ["Transfer-Encoding: chunked"], body: "zz\r\nabc\r\n0\r\n\r\n"), "bad chunk size")
        case 6: return (request(base + ["Transfer-Encoding: chunked"], body: "5\r\n{\"pro\r\n"), "truncated chunked body")
        case 7: return (request(["POST /v1/completions HTTP/1.1", "Host: x", "X-Bad\u{0}Header: 1", "Content-Length: \(json.utf8.count)"]), "NUL in header name")
        case 8: return (Array("POST /v1/completions HTTP/1.1\r\nHost: x\r\nX: \u{FF}\r\nContent-Length: 2\r\n\r\n{}".utf8) + [0xFF, 0xFE], "non-ASCII header bytes")
        case 9: return (request(base + ["X-Long: " + String(repeating: "a", count: g.pick([10_000, 100_000, 1_000_000])), "Content-Length: \(json.utf8.count)"]), "huge header")
        case 10: return (Array("GARBAGE\r\n\r\n".utf8), "garbage request line")
        case 11: return (Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8), "HTTP/2 preface")
        case 12: return ((0..<g.int(1...500)).map { _ in UInt8.random(in: 0...255, using: &g) }, "random bytes")
        case 13: return (Array("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 31\r\n".utf8), "truncated head")
        case 14: return (request(["POST /v1/completions HTTP/1.0", "Content-Type: application/json", "Content-Length: \(json.utf8.count)"]), "HTTP/1.0")
        default:
            return (request(base + ["Content-Length: \(json.utf8.count)"]) + request(["GET /health HTTP/1.1", "Host: x"], body: ""),
                    "pipelined")
        }
    }
}
