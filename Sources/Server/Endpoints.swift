import Serving
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MemPool
import Prometheus

/// The handlers behind the routes. Each generation request runs as one engine request whose
/// stream is either collected into one JSON body or relayed as server-sent events.
struct Endpoints: Sendable {
    let engine: any InferenceBackend
    let server: MemServeServer
    let configuration: ServerConfiguration
    let registry: PrometheusCollectorRegistry
    let startTime: Int
    let logger: Logger
    /// Counts admitted generation requests against `configuration.limits`.
    let gate: AdmissionGate

    /// The model as clients name it (`ServerConfiguration.servedModelNames`).
    var served: ServedModel { engine.servedModel.renamed(configuration.servedModelNames) }
    var modelName: String { served.name }

    /// Built per request: the token limit depends on the KV cache's size, which the engine
    /// reports only once its thread has started.
    var planner: RequestPlanner {
        let model = served
        return RequestPlanner(modelNames: model.names, tokenizer: model.tokenizer, chatTemplate: model.chatTemplate,
                              tokenLimit: server.tokenLimit)
    }

    // MARK: - Generation

    /// A header that names the request's session, for session-affinity routing (OpenAI's
    /// `user` field wins when both are present).
    static let sessionHeader = HTTPField.Name("x-session-id")!

    func completions(_ request: Request, _ context: ServerContext) async throws(APIError) -> Response {
        let body = try await JSONBody.decode(CompletionRequest.self, from: request, limit: configuration.maxBodyBytes)
        let plan = try planner.plan(body)
        let id = "cmpl-" + Self.randomID()
        let created = Int(Date().timeIntervalSince1970)
        let admission = try gate.admit(tokens: plan.promptTokens.count)
        let (requestID, stream) = try submit(plan, traceID: id, session: request.headers[Self.sessionHeader])
        if plan.stream {
            let model = modelName, fingerprint = configuration.systemFingerprint
            return sse(requestID: requestID, admission: admission, stream: relay(stream, until: context.connection), plan: plan, makeChunks: { text, finish in
                [CompletionResponse(id: id, created: created, model: model, systemFingerprint: fingerprint,
                                    choices: [.init(text: text, finishReason: finish)],
                                    usage: plan.includeUsage ? .some(nil) : .none)]
            }, first: { [] }, usageChunk: { usage in
                CompletionResponse(id: id, created: created, model: model, systemFingerprint: fingerprint,
                                   choices: [], usage: .some(usage))
            })
        }
        let result = try await collect(requestID: requestID, admission: admission, stream: stream, plan: plan,
                                       connection: context.connection)
        return JSONBody.response(CompletionResponse(
            id: id, created: created, model: modelName, systemFingerprint: configuration.systemFingerprint,
            choices: [.init(text: result.text, finishReason: result.finishReason)], usage: .some(result.usage)))
    }

    func chatCompletions(_ request: Request, _ context: ServerContext) async throws(APIError) -> Response {
        let body = try await JSONBody.decode(ChatCompletionRequest.self, from: request, limit: configuration.maxBodyBytes)
        let plan = try planner.plan(body)
        let id = "chatcmpl-" + Self.randomID()
        let created = Int(Date().timeIntervalSince1970)
        let admission = try gate.admit(tokens: plan.promptTokens.count)
        let (requestID, stream) = try submit(plan, traceID: id, session: request.headers[Self.sessionHeader])
        if plan.stream {
            let model = modelName, fingerprint = configuration.systemFingerprint
            let usageField: Usage?? = plan.includeUsage ? .some(nil) : .none
            @Sendable func chunk(_ delta: ChunkChoice.Delta, _ finish: String?) -> ChatCompletionChunk {
                ChatCompletionChunk(id: id, created: created, model: model, systemFingerprint: fingerprint,
                                    choices: [.init(delta: delta, finishReason: finish)], usage: usageField)
            }
            return sse(requestID: requestID, admission: admission, stream: relay(stream, until: context.connection), plan: plan, makeChunks: { text, finish in
                // OpenAI ends with a chunk whose delta is empty and which carries the finish reason.
                var chunks: [ChatCompletionChunk] = []
                if !text.isEmpty { chunks.append(chunk(.init(content: text), nil)) }
                if let finish { chunks.append(chunk(.init(), finish)) }
                return chunks
            }, first: {
                [chunk(.init(role: "assistant", content: ""), nil)]
            }, usageChunk: { usage in
                ChatCompletionChunk(id: id, created: created, model: model, systemFingerprint: fingerprint,
                                    choices: [], usage: .some(usage))
            })
        }
        let result = try await collect(requestID: requestID, admission: admission, stream: stream, plan: plan,
                                       connection: context.connection)
        return JSONBody.response(ChatCompletionResponse(
            id: id, created: created, model: modelName, systemFingerprint: configuration.systemFingerprint,
            choices: [.init(message: .init(content: result.text), finishReason: result.finishReason)],
            usage: .some(result.usage)))
    }

    private func submit(_ plan: GenerationPlan, traceID: String, session: String?) throws(APIError)
        -> (Serving.RequestID, AsyncThrowingStream<RequestOutput, any Error>)
    {
        do {
            return try engine.submit(ServingRequest(promptTokens: plan.promptTokens, sampling: plan.sampling,
                                                    traceID: traceID, session: plan.user ?? session))
        } catch {
            throw APIError(error, promptParam: plan.promptParam)
        }
    }

    struct Collected {
        var text = ""
        var finishReason = "stop"
        var usage = Usage(prompt: 0, completion: 0, cached: 0)
    }

    /// Runs a request to its end, or until the client hangs up; either way a request that did
    /// not finish is aborted so its KV blocks come back.
    private func collect(requestID: Serving.RequestID, admission: Admission, stream: AsyncThrowingStream<RequestOutput, any Error>,
                         plan: GenerationPlan, connection: ConnectionWatcher.State?) async throws(APIError) -> Collected {
        defer { admission.release() }
        var result = Collected()
        var finish: FinishReason?
        do {
            for try await out in relay(stream, until: connection) {
                result.text += out.text
                result.usage = Usage(prompt: out.promptTokens, completion: out.generatedTokens, cached: out.cachedTokens)
                if let reason = out.finishReason { finish = reason }
            }
        } catch is ClientGone {
            engine.abort(requestID)
            throw .clientDisconnected
        } catch {
            engine.abort(requestID)
            throw APIError(streamError: error, promptParam: plan.promptParam)
        }
        guard let finish, finish != .abort else {
            engine.abort(requestID)
            throw .generationFailed("the request was aborted before it finished")
        }
        result.finishReason = finish.rawValue
        log(result, plan: plan, stream: false)
        return result
    }

    /// Relays the engine stream as OpenAI server-sent events.
    ///
    /// A client that hangs up is noticed by the relay (or, without one, by the next failed
    /// write); the writer then stops consuming and aborts the engine request, which frees its
    /// blocks.
    private func sse<Chunk: Encodable & Sendable>(
        requestID: Serving.RequestID, admission: Admission, stream: AsyncThrowingStream<RequestOutput, any Error>,
        plan: GenerationPlan, makeChunks: @escaping @Sendable (String, String?) -> [Chunk],
        first: @escaping @Sendable () -> [Chunk],
        usageChunk: @escaping @Sendable (Usage) -> Chunk
    ) -> Response {
        let engine = self.engine, endpoints = self
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        let body = ResponseBody { writer in
            var completed = false
            defer {
                if !completed { engine.abort(requestID) }
                admission.release()
            }
            for chunk in first() { try await writer.write(JSONBody.event(chunk)) }
            var collected = Collected()
            collected.usage = Usage(prompt: plan.promptTokens.count, completion: 0, cached: 0)
            var outputs = stream.makeAsyncIterator()
            while true {
                // Stream failures become an error event; write failures (client gone) end the
                // handler, and the deferred abort frees the request.
                let next: RequestOutput?
                do {
                    next = try await outputs.next()
                } catch is ClientGone {
                    return
                } catch {
                    let apiError = APIError(streamError: error, promptParam: plan.promptParam)
                    try await writer.write(JSONBody.event(apiError.body))
                    break
                }
                guard let out = next else { break }
                collected.usage = Usage(prompt: out.promptTokens, completion: out.generatedTokens, cached: out.cachedTokens)
                let finish = out.finishReason?.rawValue
                if out.text.isEmpty && finish == nil { continue }
                collected.text += out.text
                for chunk in makeChunks(out.text, finish) { try await writer.write(JSONBody.event(chunk)) }
                if let finish {
                    collected.finishReason = finish
                    completed = true
                }
            }
            if completed && plan.includeUsage { try await writer.write(JSONBody.event(usageChunk(collected.usage))) }
            try await writer.write(JSONBody.done)
            try await writer.finish(nil)
            if completed { endpoints.log(collected, plan: plan, stream: true) }
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    private func log(_ result: Collected, plan: GenerationPlan, stream: Bool) {
        logger.info("generation done", metadata: [
            "prompt_tokens": "\(result.usage.promptTokens)",
            "cached_tokens": "\(result.usage.promptTokensDetails.cachedTokens)",
            "completion_tokens": "\(result.usage.completionTokens)",
            "finish_reason": "\(result.finishReason)",
            "stream": "\(stream)",
        ])
    }

    static func randomID() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        return String((0..<24).map { _ in alphabet.randomElement()! })
    }

    // MARK: - Info

    func models() -> Response {
        JSONBody.response(ModelList(data: served.names.map(modelCard)))
    }

    func model(named name: String) throws(APIError) -> Response {
        guard served.names.contains(name) else { throw .modelNotFound(name) }
        return JSONBody.response(modelCard(name))
    }

    private func modelCard(_ name: String) -> ModelCard {
        ModelCard(id: name, created: startTime, maxModelLen: planner.tokenLimit)
    }

    func health() -> Response {
        let s = engine.stats
        func tier(_ t: TierStats) -> EngineStatsBody.Tier {
            .init(capacity: t.capacity, free: t.free, used: t.used, cached: t.cached)
        }
        let stopping = engine.isStopped, serving = engine.canServe
        let body = HealthResponse(
            status: stopping ? "stopped" : serving ? "ok" : "unavailable", model: modelName,
            engine: EngineStatsBody(running: s.running, waiting: s.waiting, kvBlocksHot: tier(s.hot), kvBlocksCold: tier(s.cold),
                                    evictions: s.evictions, demotions: s.demotions, cachedBlocks: s.cachedBlocks))
        return JSONBody.response(body, status: stopping || !serving ? .serviceUnavailable : .ok)
    }

    func metrics() -> Response {
        PoolGauges.record(engine.stats)
        let text = registry.emitToString()
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
