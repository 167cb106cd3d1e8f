import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Server

/// One bad request and what must come back.
struct BadCase: Sendable, CustomTestStringConvertible {
    var name: String
    var method: HTTPRequest.Method = .post
    var uri = "/v1/completions"
    var body = ""
    var contentType: String? = "application/json"
    var status: HTTPResponse.Status = .badRequest
    var param: String?
    var code: String?

    var testDescription: String { name }
}

let longPrompt = String(repeating: "word ", count: 400)

let badCases: [BadCase] = [
    BadCase(name: "malformed JSON", body: #"{"prompt": "hi", "#, code: "invalid_json"),
    BadCase(name: "empty body", body: "", code: "invalid_json"),
    BadCase(name: "top-level array", body: #"[1, 2]"#),
    BadCase(name: "max_tokens of the wrong type", body: #"{"prompt":"hi","max_tokens":"ten"}"#, param: "max_tokens", code: "invalid_type"),
    BadCase(name: "temperature of the wrong type", body: #"{"prompt":"hi","temperature":"hot"}"#, param: "temperature"),
    BadCase(name: "stream of the wrong type", body: #"{"prompt":"hi","stream":"yes"}"#, param: "stream"),
    BadCase(name: "prompt of the wrong type", body: #"{"prompt":{"text":"hi"}}"#, param: "prompt"),
    BadCase(name: "missing prompt", body: #"{"max_tokens":3}"#, param: "prompt", code: "missing_required_parameter"),
    BadCase(name: "missing messages", uri: "/v1/chat/completions", body: #"{"model":"synthetic"}"#, param: "messages"),
    BadCase(name: "message without role", uri: "/v1/chat/completions", body: #"{"messages":[{"content":"hi"}]}"#, param: "messages[0].role"),
    BadCase(name: "unknown model", body: #"{"model":"gpt-4","prompt":"hi"}"#, status: .notFound, param: "model", code: "model_not_found"),
    BadCase(name: "unknown chat model", uri: "/v1/chat/completions", body: #"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
            status: .notFound, param: "model", code: "model_not_found"),
    BadCase(name: "empty prompt", body: #"{"prompt":""}"#, param: "prompt"),
    BadCase(name: "empty prompt array", body: #"{"prompt":[]}"#, param: "prompt"),
    BadCase(name: "empty messages", uri: "/v1/chat/completions", body: #"{"messages":[]}"#, param: "messages"),
    BadCase(name: "prompt longer than the context", body: #"{"prompt":"\#(longPrompt)"}"#, param: "prompt", code: "context_length_exceeded"),
    BadCase(name: "messages longer than the context", uri: "/v1/chat/completions",
            body: #"{"messages":[{"role":"user","content":"\#(longPrompt)"}]}"#, param: "messages", code: "context_length_exceeded"),
    BadCase(name: "negative max_tokens", body: #"{"prompt":"hi","max_tokens":-5}"#, param: "max_tokens", code: "integer_below_min_value"),
    BadCase(name: "zero max_tokens", body: #"{"prompt":"hi","max_tokens":0}"#, param: "max_tokens"),
    // Foundation's parser reports this as invalid JSON rather than naming the field; 400 either way.
    BadCase(name: "max_tokens beyond Int", body: #"{"prompt":"hi","max_tokens":1e40}"#),
    BadCase(name: "fractional max_tokens", body: #"{"prompt":"hi","max_tokens":2.5}"#),
    BadCase(name: "zero max_completion_tokens", uri: "/v1/chat/completions",
            body: #"{"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":0}"#, param: "max_completion_tokens"),
    BadCase(name: "temperature too high", body: #"{"prompt":"hi","temperature":5}"#, param: "temperature", code: "invalid_value"),
    BadCase(name: "negative temperature", body: #"{"prompt":"hi","temperature":-0.1}"#, param: "temperature"),
    BadCase(name: "top_p zero", body: #"{"prompt":"hi","top_p":0}"#, param: "top_p"),
    BadCase(name: "top_p above one", body: #"{"prompt":"hi","top_p":1.5}"#, param: "top_p"),
    BadCase(name: "top_k below -1", body: #"{"prompt":"hi","top_k":-2}"#, param: "top_k"),
    BadCase(name: "min_p above one", body: #"{"prompt":"hi","min_p":2}"#, param: "min_p"),
    BadCase(name: "frequency_penalty out of range", body: #"{"prompt":"hi","frequency_penalty":3}"#, param: "frequency_penalty"),
    BadCase(name: "presence_penalty out of range", body: #"{"prompt":"hi","presence_penalty":-3}"#, param: "presence_penalty"),
    BadCase(name: "repetition_penalty zero", body: #"{"prompt":"hi","repetition_penalty":0}"#, param: "repetition_penalty"),
    BadCase(name: "n = 2", body: #"{"prompt":"hi","n":2}"#, param: "n"),
    BadCase(name: "chat n = 3", uri: "/v1/chat/completions", body: #"{"messages":[{"role":"user","content":"hi"}],"n":3}"#, param: "n"),
    BadCase(name: "logprobs on completions", body: #"{"prompt":"hi","logprobs":2}"#, param: "logprobs"),
    BadCase(name: "logprobs on chat", uri: "/v1/chat/completions", body: #"{"messages":[{"role":"user","content":"hi"}],"logprobs":true}"#,
            param: "logprobs"),
    BadCase(name: "echo", body: #"{"prompt":"hi","echo":true}"#, param: "echo"),
    BadCase(name: "batched prompts", body: #"{"prompt":["a","b"]}"#, param: "prompt"),
    BadCase(name: "token id out of range", body: #"{"prompt":[1, 999999]}"#, param: "prompt"),
    BadCase(name: "stop of the wrong type", body: #"{"prompt":"hi","stop":7}"#, param: "stop"),
    BadCase(name: "too many stop strings", body: #"{"prompt":"hi","stop":[\#((0..<17).map { "\"s\($0)\"" }.joined(separator: ","))]}"#,
            param: "stop"),
    BadCase(name: "stream_options without stream", body: #"{"prompt":"hi","stream_options":{"include_usage":true}}"#, param: "stream_options"),
    BadCase(name: "unknown message role", uri: "/v1/chat/completions", body: #"{"messages":[{"role":"wizard","content":"hi"}]}"#,
            param: "messages[0].role", code: "invalid_value"),
    BadCase(name: "tool role", uri: "/v1/chat/completions",
            body: #"{"messages":[{"role":"user","content":"hi"},{"role":"tool","content":"42"}]}"#, param: "messages[1].role"),
    BadCase(name: "image content part", uri: "/v1/chat/completions",
            body: #"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#, param: "messages[0].content"),
    BadCase(name: "content of the wrong type", uri: "/v1/chat/completions", body: #"{"messages":[{"role":"user","content":5}]}"#,
            param: "messages[0].content"),
    BadCase(name: "tools", uri: "/v1/chat/completions",
            body: #"{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]}"#, param: "tools"),
    BadCase(name: "json response_format", uri: "/v1/chat/completions",
            body: #"{"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}"#, param: "response_format"),
    // Found by hand (issue 11): kept as regression cases.
    BadCase(name: "null message content", uri: "/v1/chat/completions", body: #"{"messages":[{"role":"user","content":null}]}"#,
            param: "messages[0].content", code: "invalid_type"),
    BadCase(name: "missing message content", uri: "/v1/chat/completions", body: #"{"messages":[{"role":"user"}]}"#,
            param: "messages[0].content", code: "missing_required_parameter"),
    BadCase(name: "null content of a later assistant turn", uri: "/v1/chat/completions",
            body: #"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null},{"role":"user","content":"?"}]}"#,
            param: "messages[1].content"),
    BadCase(name: "max_tokens of 10^12", body: #"{"prompt":"hi","max_tokens":1000000000000}"#, param: "max_tokens",
            code: "context_length_exceeded"),
    BadCase(name: "max_tokens of Int.max", body: #"{"prompt":"hi","max_tokens":9223372036854775807}"#, param: "max_tokens",
            code: "context_length_exceeded"),
    BadCase(name: "max_tokens beyond Int64", body: #"{"prompt":"hi","max_tokens":92233720368547758070}"#),
    BadCase(name: "chat max_tokens beyond the context", uri: "/v1/chat/completions",
            body: #"{"messages":[{"role":"user","content":"hi"}],"max_tokens":257}"#, param: "max_tokens", code: "context_length_exceeded"),
    BadCase(name: "n = 0", body: #"{"prompt":"hi","n":0}"#, param: "n"),
    BadCase(name: "n negative", body: #"{"prompt":"hi","n":-1}"#, param: "n"),
    BadCase(name: "n huge", body: #"{"prompt":"hi","n":1000000000000}"#, param: "n"),
    BadCase(name: "logprobs negative", body: #"{"prompt":"hi","logprobs":-1}"#, param: "logprobs"),
    BadCase(name: "top_logprobs negative", uri: "/v1/chat/completions",
            body: #"{"messages":[{"role":"user","content":"hi"}],"top_logprobs":-1}"#, param: "top_logprobs"),
    BadCase(name: "best_of zero", body: #"{"prompt":"hi","best_of":0}"#, param: "best_of"),
    BadCase(name: "temperature overflowing to infinity", body: #"{"prompt":"hi","temperature":1e999}"#),
    BadCase(name: "temperature NaN literal", body: #"{"prompt":"hi","temperature":NaN}"#),
    BadCase(name: "body too large", body: #"{"prompt":"\#(String(repeating: "x", count: 5000))"}"#, status: .contentTooLarge),
    BadCase(name: "form content type", body: "prompt=hi", contentType: "application/x-www-form-urlencoded", status: .unsupportedMediaType),
    BadCase(name: "text content type", body: #"{"prompt":"hi"}"#, contentType: "text/plain", status: .unsupportedMediaType),
    BadCase(name: "unknown route", method: .get, uri: "/v1/engines", status: .notFound, code: "unknown_url"),
    BadCase(name: "unknown POST route", uri: "/v2/completions", body: "{}", status: .notFound),
    BadCase(name: "GET on a POST route", method: .get, uri: "/v1/completions", status: .methodNotAllowed),
    BadCase(name: "POST on a GET route", uri: "/v1/models", body: "{}", status: .methodNotAllowed),
    BadCase(name: "DELETE on health", method: .delete, uri: "/health", status: .methodNotAllowed),
]

@Suite("Bad input: 4xx with OpenAI's error body, other requests unaffected")
struct ErrorTests {
    static func check(_ bad: BadCase, _ r: TestResponse) {
        #expect(r.status == bad.status, "\(bad.name): \(r.status) \(r.text)")
        #expect(r.headers[.contentType] == "application/json", "\(bad.name)")
        let error = r.json.object("error")
        #expect(error != nil, "\(bad.name): body \(r.text)")
        guard let error else { return }
        #expect(!(error.string("message") ?? "").isEmpty, "\(bad.name)")
        #expect(error.string("type") == "invalid_request_error", "\(bad.name)")
        #expect(error.keys.contains("param") && error.keys.contains("code"), "\(bad.name): \(r.text)")
        if let param = bad.param { #expect(error.string("param") == param, "\(bad.name): \(r.text)") }
        if let code = bad.code { #expect(error.string("code") == code, "\(bad.name): \(r.text)") }
    }

    static func send(_ bad: BadCase, _ client: any TestClientProtocol) async throws -> TestResponse {
        var headers = HTTPFields()
        if let contentType = bad.contentType, bad.method == .post { headers[.contentType] = contentType }
        return try await client.execute(uri: bad.uri, method: bad.method, headers: headers,
                                        body: bad.method == .post ? ByteBuffer(string: bad.body) : nil)
    }

    @Test("every bad request gets its status and an OpenAI error body", arguments: badCases)
    func badRequest(_ bad: BadCase) async throws {
        try await Harness.make(maxBodyBytes: 4096).withRouter { client in
            Self.check(bad, try await Self.send(bad, client))
        }
    }

    @Test("bad requests sent alongside a streaming request leave it intact")
    func concurrentGoodRequest() async throws {
        try await Harness.make(maxBodyBytes: 4096).withRouter { client in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let r = try await client.post("/v1/chat/completions",
                                                  #"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":40,"ignore_eos":true,"stream":true}"#)
                    #expect(r.status == .ok)
                    #expect(r.events.last == "[DONE]")
                    let finish = r.events.dropLast().map(SSE.object).compactMap { $0.array("choices")?.first?.string("finish_reason") }
                    #expect(finish == ["length"])
                }
                for bad in badCases {
                    group.addTask { Self.check(bad, try await Self.send(bad, client)) }
                }
                try await group.waitForAll()
            }
            let after = try await client.post("/v1/completions", #"{"prompt":"still fine","max_tokens":3}"#)
            #expect(after.status == .ok)
        }
    }

    @Test("405 names the allowed method")
    func allowHeader() async throws {
        try await Harness.make().withRouter { client in
            let r = try await client.get("/v1/chat/completions")
            #expect(r.status == .methodNotAllowed)
            #expect(r.headers[.allow] == "POST")
        }
    }
}
