import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Server

@Suite("OpenAI endpoints over a synthetic model")
struct EndpointTests {
    @Test("completions, non-streaming: text_completion shape, usage, finish_reason length")
    func completion() async throws {
        try await Harness.make().withRouter { client in
            let r = try await client.post("/v1/completions", #"{"model":"synthetic","prompt":"Hello there","max_tokens":5,"temperature":0,"ignore_eos":true}"#)
            #expect(r.status == .ok)
            #expect(r.headers[.contentType] == "application/json")
            let j = r.json
            #expect(j.string("id")?.hasPrefix("cmpl-") == true)
            #expect(j.string("object") == "text_completion")
            #expect(j.string("model") == "synthetic")
            #expect(j.int("created") ?? 0 > 1_700_000_000)
            let choice = try #require(j.array("choices")?.first)
            #expect(choice.int("index") == 0)
            #expect(choice.string("text") != nil)
            #expect(choice.isNull("logprobs"))
            #expect(choice.string("finish_reason") == "length")
            let usage = try #require(j.object("usage"))
            #expect(usage.int("completion_tokens") == 5)
            #expect(usage.int("prompt_tokens") ?? 0 > 0)
            #expect(usage.int("total_tokens") == (usage.int("prompt_tokens") ?? 0) + 5)
            #expect(usage.object("prompt_tokens_details")?.int("cached_tokens") != nil)
        }
    }

    @Test("a template the vocabulary cannot render: completions still served, chat refused with 400 saying why")
    func unusableChatTemplate() async throws {
        let llama3 = "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}{% endfor %}"
        try await Harness.make(chatTemplate: llama3).withRouter { client in
            let completion = try await client.post("/v1/completions", #"{"prompt":"Hello","max_tokens":2}"#)
            #expect(completion.status == .ok, "\(completion.text)")
            let chat = try await client.post("/v1/chat/completions", #"{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}"#)
            #expect(chat.status == .badRequest)
            let error = try #require(chat.json.object("error"))
            #expect(error.string("code") == "chat_template_unavailable" && error.string("param") == "messages")
            #expect(error.string("message")?.contains("<|start_header_id|>") == true)
        }
    }

    @Test("an unknown chat template falls back to ChatML: chat is served")
    func unknownChatTemplate() async throws {
        let odd = "{% for message in messages %}### {{ message['role'] }}: {{ message['content'] }}{% endfor %}"
        try await Harness.make(chatTemplate: odd).withRouter { client in
            let chat = try await client.post("/v1/chat/completions", #"{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}"#)
            #expect(chat.status == .ok, "\(chat.text)")
        }
    }

    @Test("completions accept an array of one string, token ids, no model field, and ignore unknown fields")
    func promptForms() async throws {
        try await Harness.make().withRouter { client in
            for body in [#"{"prompt":["Hi"],"max_tokens":2}"#,
                         #"{"prompt":[72,105,33],"max_tokens":2}"#,
                         #"{"prompt":[[72,105]],"max_tokens":2,"user":"u1","some_future_field":{"x":1}}"#,
                         #"{"prompt":"Hi","max_tokens":2,"stop":"zz","seed":-3,"top_k":-1,"n":1,"logprobs":null}"#] {
                let r = try await client.post("/v1/completions", body)
                #expect(r.status == .ok, "\(body): \(r.text)")
                #expect(r.json.array("choices")?.count == 1)
            }
        }
    }

    @Test("completions stream: chunks, finish_reason on the last, usage chunk, [DONE]; text equals the non-streamed text")
    func completionStream() async throws {
        try await Harness.make().withRouter { client in
            let base = #""prompt":"Once upon a time","max_tokens":8,"temperature":0,"ignore_eos":true"#
            let whole = try await client.post("/v1/completions", "{\(base)}")
            let expected = whole.json.array("choices")?.first?.string("text")
            let r = try await client.post("/v1/completions", #"{\#(base),"stream":true,"stream_options":{"include_usage":true}}"#)
            #expect(r.status == .ok)
            #expect(r.headers[.contentType] == "text/event-stream")
            let events = r.events
            #expect(events.last == "[DONE]")
            let chunks = events.dropLast().map(SSE.object)
            #expect(chunks.count >= 2)
            var text = ""
            for chunk in chunks.dropLast() {
                #expect(chunk.string("object") == "text_completion")
                #expect(chunk.string("id")?.hasPrefix("cmpl-") == true)
                #expect(chunk.isNull("usage"))
                text += chunk.array("choices")?.first?.string("text") ?? ""
            }
            let finishes = chunks.dropLast().compactMap { $0.array("choices")?.first?.string("finish_reason") }
            #expect(finishes == ["length"])
            #expect(text == expected)
            let usageChunk = try #require(chunks.last)
            #expect(usageChunk.array("choices")?.isEmpty == true)
            #expect(usageChunk.object("usage")?.int("completion_tokens") == 8)
        }
    }

    @Test("chat, non-streaming: chat.completion shape; content as parts; developer role")
    func chat() async throws {
        try await Harness.make().withRouter { client in
            let body = #"{"model":"synthetic","messages":[{"role":"developer","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi "},{"type":"text","text":"there"}]}],"max_completion_tokens":4,"ignore_eos":true,"temperature":0}"#
            let r = try await client.post("/v1/chat/completions", body)
            #expect(r.status == .ok, "\(r.text)")
            let j = r.json
            #expect(j.string("id")?.hasPrefix("chatcmpl-") == true)
            #expect(j.string("object") == "chat.completion")
            let choice = try #require(j.array("choices")?.first)
            #expect(choice.object("message")?.string("role") == "assistant")
            #expect(choice.object("message")?.string("content") != nil)
            #expect(choice.string("finish_reason") == "length")
            #expect(j.object("usage")?.int("completion_tokens") == 4)
        }
    }

    @Test("chat stream: role chunk first, content deltas, empty delta with finish_reason, usage, [DONE]")
    func chatStream() async throws {
        try await Harness.make().withRouter { client in
            let body = #"{"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":6,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}"#
            let r = try await client.post("/v1/chat/completions", body)
            #expect(r.status == .ok)
            let events = r.events
            #expect(events.last == "[DONE]")
            let chunks = events.dropLast().map(SSE.object)
            for chunk in chunks {
                #expect(chunk.string("object") == "chat.completion.chunk")
                #expect(chunk.string("id") == chunks[0].string("id"))
            }
            let first = try #require(chunks.first?.array("choices")?.first)
            #expect(first.object("delta")?.string("role") == "assistant")
            #expect(first.isNull("finish_reason"))
            let last = try #require(chunks.dropLast().last?.array("choices")?.first)
            #expect(last.object("delta")?.isEmpty == true)
            #expect(last.string("finish_reason") == "length")
            let usage = try #require(chunks.last?.object("usage"))
            #expect(usage.int("completion_tokens") == 6)
            #expect(chunks.last?.array("choices")?.isEmpty == true)
        }
    }

    @Test("stream without include_usage leaves usage out of every chunk")
    func streamWithoutUsage() async throws {
        try await Harness.make().withRouter { client in
            let r = try await client.post("/v1/chat/completions", #"{"messages":[{"role":"user","content":"x"}],"max_tokens":3,"stream":true}"#)
            let chunks = r.events.dropLast().map(SSE.object)
            #expect(!chunks.isEmpty)
            #expect(chunks.allSatisfy { $0["usage"] == nil && $0.array("choices")?.count == 1 })
        }
    }

    @Test("a repeated long prompt reports cached prompt tokens (prefix caching)")
    func cachedTokens() async throws {
        try await Harness.make().withRouter { client in
            let prompt = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 3)
            let body = #"{"messages":[{"role":"user","content":"\#(prompt)"}],"max_tokens":2}"#
            let first = try await client.post("/v1/chat/completions", body)
            let firstCached = first.json.object("usage")?.object("prompt_tokens_details")?.int("cached_tokens")
            #expect(firstCached == 0)
            let second = try await client.post("/v1/chat/completions", body)
            let usage = try #require(second.json.object("usage"))
            let cached = usage.object("prompt_tokens_details")?.int("cached_tokens") ?? 0
            #expect(cached > 0)
            #expect(cached < usage.int("prompt_tokens") ?? 0)
            // The plain prompt differs from the chat-rendered one: the first request caches it.
            _ = try await client.post("/v1/completions", #"{"prompt":"\#(prompt)","max_tokens":2}"#)
            let streamed = try await client.post("/v1/completions", #"{"prompt":"\#(prompt)","max_tokens":2,"stream":true,"stream_options":{"include_usage":true}}"#)
            let usageChunk = SSE.object(streamed.events.dropLast().last ?? "")
            #expect(usageChunk.object("usage")?.object("prompt_tokens_details")?.int("cached_tokens") ?? 0 > 0)
        }
    }

    @Test("max_tokens beyond the context is refused with 400 naming the limit (as vLLM), not clamped")
    func hugeMaxTokens() async throws {
        try await Harness.make(maxContext: 64).withRouter { client in
            for body in [#"{"prompt":"Hello","max_tokens":1000000,"ignore_eos":true}"#,
                         #"{"prompt":"Hello","max_tokens":1000000000000}"#,
                         #"{"prompt":"Hello","max_tokens":9223372036854775807}"#] {
                let r = try await client.post("/v1/completions", body)
                #expect(r.status == .badRequest, "\(body): \(r.text)")
                let error = try #require(r.json.object("error"))
                #expect(error.string("code") == "context_length_exceeded")
                #expect(error.string("param") == "max_tokens")
                let message = error.string("message") ?? ""
                #expect(message.hasPrefix("This model's maximum context length is 64 tokens. However, you requested "), "\(message)")
                #expect(message.contains(" in the prompt, ") && message.contains(" in the completion)"), "\(message)")
            }
            // The largest completion that fits is served in full.
            let probe = try await client.post("/v1/completions", #"{"prompt":"Hello","max_tokens":1}"#)
            let promptTokens = try #require(probe.json.object("usage")?.int("prompt_tokens"))
            let fits = try await client.post("/v1/completions", #"{"prompt":"Hello","max_tokens":\#(64 - promptTokens),"ignore_eos":true}"#)
            #expect(fits.status == .ok, "\(fits.text)")
            #expect(fits.json.object("usage")?.int("total_tokens") == 64)
            let chat = try await client.post("/v1/chat/completions",
                                              #"{"messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":100000}"#)
            #expect(chat.status == .badRequest)
            #expect(chat.json.object("error")?.string("param") == "max_completion_tokens")
            #expect(chat.json.object("error")?.string("message")?.contains(" in the messages, ") == true, "\(chat.text)")
            // Without max_tokens a chat completion takes what the context leaves.
            let open = try await client.post("/v1/chat/completions", #"{"messages":[{"role":"user","content":"Hi"}],"ignore_eos":true}"#)
            #expect(open.status == .ok)
            #expect(open.json.object("usage")?.int("total_tokens") == 64)
        }
    }

    @Test("stop strings end the completion with finish_reason stop and are not returned")
    func stopString() async throws {
        try await Harness.make().withRouter { client in
            let probe = try await client.post("/v1/completions", #"{"prompt":"abc","max_tokens":12,"temperature":0,"ignore_eos":true}"#)
            let text = probe.json.array("choices")?.first?.string("text") ?? ""
            guard text.count >= 4 else { return }
            let stop = String(text.dropFirst(2).prefix(2))
            let escaped = String(data: try JSONEncoder().encode(stop), encoding: .utf8)!
            let r = try await client.post("/v1/completions", #"{"prompt":"abc","max_tokens":12,"temperature":0,"ignore_eos":true,"stop":[\#(escaped)]}"#)
            let choice = try #require(r.json.array("choices")?.first)
            #expect(choice.string("finish_reason") == "stop")
            #expect(choice.string("text")?.contains(stop) == false)
        }
    }

    @Test("models, model by id, health")
    func info() async throws {
        try await Harness.make().withRouter { client in
            let models = try await client.get("/v1/models")
            #expect(models.status == .ok)
            #expect(models.json.string("object") == "list")
            let card = try #require(models.json.array("data")?.first)
            #expect(card.string("id") == "synthetic")
            #expect(card.string("object") == "model")
            #expect(card.string("owned_by") == "memserve")
            #expect(try await client.get("/v1/models/synthetic").json.string("id") == "synthetic")
            let missing = try await client.get("/v1/models/gpt-4")
            #expect(missing.status == .notFound)
            #expect(missing.json.object("error")?.string("code") == "model_not_found")
            let health = try await client.get("/health")
            #expect(health.status == .ok)
            #expect(health.json.string("status") == "ok")
            #expect(health.json.object("engine")?.object("kv_blocks_hot")?.int("capacity") == 64)
        }
    }

    @Test("metrics: Prometheus text with engine series and HTTP counts by route and status")
    func metrics() async throws {
        try await Harness.make().withRouter { client in
            _ = try await client.post("/v1/completions", #"{"prompt":"Hi","max_tokens":2}"#)
            _ = try await client.get("/nope")
            let r = try await client.get("/metrics")
            #expect(r.status == .ok)
            #expect(r.headers[.contentType]?.hasPrefix("text/plain") == true)
            let text = r.text
            for series in ["memserve_requests_total", "memserve_generated_tokens_total", "memserve_prompt_tokens_total",
                           "memserve_time_to_first_token_seconds_bucket", "memserve_kv_blocks{", "memserve_requests_running",
                           #"memserve_http_requests_total{route="/v1/completions",method="POST",status="200"}"#,
                           #"memserve_http_requests_total{route="unmatched",method="GET",status="404"}"#] {
                #expect(text.contains(series), "missing \(series)")
            }
        }
    }
}

@Suite struct ServedModelNameTests {
    @Test func aliasesAreServedAndListed() async throws {
        let h = try Harness.make(servedModelNames: ["gpt-4o-mini", "my-model"])
        try await h.withRouter { client in
            try await client.execute(uri: "/v1/models", method: .get) { response in
                let body = String(buffer: response.body)
                #expect(body.contains("\"gpt-4o-mini\"") && body.contains("\"my-model\"") && !body.contains("\"synthetic\""))
            }
            for name in ["gpt-4o-mini", "my-model"] {
                let json = #"{"model":"\#(name)","prompt":"hi","max_tokens":2,"temperature":0}"#
                try await client.execute(uri: "/v1/completions", method: .post, headers: [.contentType: "application/json"],
                                         body: ByteBuffer(string: json)) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body).contains("\"model\":\"gpt-4o-mini\""))
                }
            }
            let json = #"{"model":"synthetic","prompt":"hi","max_tokens":2}"#
            try await client.execute(uri: "/v1/completions", method: .post, headers: [.contentType: "application/json"],
                                     body: ByteBuffer(string: json)) { response in
                #expect(response.status == .notFound)
            }
        }
    }
}

@Suite struct DebugEndpointTests {
    @Test("a single engine has no router: the debug endpoints answer 404 with an OpenAI error body")
    func noRouter() async throws {
        try await Harness.make().withRouter { client in
            try await client.execute(uri: "/debug/trees", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(String(buffer: response.body).contains("\"error\""))
            }
            try await client.execute(uri: "/debug/route", method: .post, headers: [.contentType: "application/json"],
                                     body: ByteBuffer(string: #"{"prompt":"hi"}"#)) { response in
                #expect(response.status == .notFound)
            }
        }
    }
}
