import Foundation
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
    /// Whether a request could be served now (`/health`): false once stopped, or when no
    /// instance behind a router can take requests.
    var canServe: Bool { get }
}

extension InferenceBackend {
    public var canServe: Bool { !isStopped }

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

/// A backend that routes over several instances and can say why: the HTTP edge serves its
/// answers on debug endpoints. Both return JSON.
public protocol RoutingIntrospection: Sendable {
    /// For `request`, every candidate's matched tokens, load and score, and the choice —
    /// without sending it anywhere.
    func explainRoute(_ request: ServingRequest) -> Data
    /// The global prompt trees' sizes per instance, and the members.
    func treeSummary() -> Data
}
