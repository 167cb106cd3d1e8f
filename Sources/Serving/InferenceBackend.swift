import ServiceLifecycle

/// What a front end (HTTP server, CLI, benchmark) needs from whatever serves requests: one
/// colocated engine (`EngineService`), a disaggregated cluster (`PDCluster`), or a router over
/// instances elsewhere.
public protocol InferenceBackend: Service {
    /// The model requests are tokenized for (names, tokenizer, chat template, context length).
    var servedModel: ServedModel { get }
    /// Queues a request; see `EngineService.submit`.
    func submit(_ request: ServingRequest) throws(EngineError) -> (RequestID, AsyncThrowingStream<RequestOutput, any Error>)
    /// Counts for health and metrics endpoints.
    var stats: EngineStats { get }
    /// Stops admitting and lets in-flight requests finish (also what `run` does on graceful shutdown).
    func shutdown()
    /// Stops a request (its client went away) wherever it is being served.
    func abort(_ id: RequestID)
    /// Whether the backend has stopped serving.
    var isStopped: Bool { get }
    /// Most tokens (prompt plus completion) one request's KV can occupy.
    var tokenCapacity: Int { get }
}

extension InferenceBackend {
    /// Queues a request with no trace id or session.
    public func submit(promptTokens: [Int32], sampling: SamplingParameters) throws(EngineError)
        -> (RequestID, AsyncThrowingStream<RequestOutput, any Error>)
    {
        try submit(ServingRequest(promptTokens: promptTokens, sampling: sampling))
    }
}

/// A failure of an instance in another process while it served a request (it died, or the
/// network failed): front ends report it as a bad gateway, not as a bug of their own.
public protocol InstanceFailure: Error, CustomStringConvertible {}
