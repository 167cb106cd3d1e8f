import ServiceLifecycle

/// What a front end (HTTP server, CLI, benchmark) needs from whatever serves requests: one
/// colocated engine (`EngineService`) or a disaggregated cluster (`PDCluster`).
public protocol InferenceBackend: Service {
    /// The model requests are tokenized for (tokenizer, chat template, context length).
    var model: LoadedModel { get }
    /// Queues a request; see `EngineService.submit`.
    func submit(promptTokens: [Int32], sampling: SamplingParameters) throws(EngineError) -> (RequestID, AsyncThrowingStream<RequestOutput, any Error>)
    /// Counts for health and metrics endpoints.
    var stats: EngineStats { get }
    /// Stops admitting and lets in-flight requests finish (also what `run` does on graceful shutdown).
    func shutdown()
}

extension EngineService: InferenceBackend {}
