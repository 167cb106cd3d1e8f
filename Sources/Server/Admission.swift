import Metrics
import Synchronization

/// How much the server holds at once: generation requests admitted and not yet finished
/// (queued in the backend or running), and their prompt tokens.
///
/// Past either limit a request is refused at once with 429 and `Retry-After` instead of joining
/// a queue that only grows: a burst then costs its excess requests a retry, not the server its
/// memory or every client its latency.
public struct LoadLimits: Sendable, Equatable {
    /// Most generation requests admitted at once.
    public var maxRequests: Int
    /// Most prompt tokens of admitted requests at once. A request larger than this alone is
    /// still admitted when nothing else is, so every request that fits the context can run.
    public var maxTokens: Int
    /// Sent as `Retry-After` (seconds) with a 429.
    public var retryAfterSeconds: Int

    public init(maxRequests: Int = 1024, maxTokens: Int = 1 << 20, retryAfterSeconds: Int = 1) {
        self.maxRequests = maxRequests
        self.maxTokens = maxTokens
        self.retryAfterSeconds = retryAfterSeconds
    }
}

/// Counts what the HTTP edge has admitted into the backend, under a lock: admission checks and
/// increments in one step, so concurrent requests can never overshoot a limit.
final class AdmissionGate: Sendable {
    struct Counts: Sendable, Equatable {
        var requests = 0
        var tokens = 0
    }

    let limits: LoadLimits
    private let counts = Mutex(Counts())
    private let requestsGauge = Gauge(label: "memserve_http_admitted_requests")
    private let tokensGauge = Gauge(label: "memserve_http_admitted_prompt_tokens")

    init(limits: LoadLimits) {
        self.limits = limits
    }

    var current: Counts { counts.withLock { $0 } }

    /// Admits a request of `tokens` prompt tokens, or refuses it with 429. The returned ticket
    /// gives its share back when released (or, at the latest, when it is deallocated).
    func admit(tokens: Int) throws(APIError) -> Admission {
        let limits = self.limits
        let outcome: Result<Counts, APIError> = counts.withLock { c in
            if c.requests >= limits.maxRequests {
                return .failure(.overloaded(.requests(limit: limits.maxRequests), retryAfter: limits.retryAfterSeconds))
            }
            if c.requests > 0 && c.tokens + tokens > limits.maxTokens {
                return .failure(.overloaded(.tokens(limit: limits.maxTokens), retryAfter: limits.retryAfterSeconds))
            }
            c.requests += 1
            c.tokens += tokens
            return .success(c)
        }
        switch outcome {
        case let .success(now):
            publish(now)
            return Admission(gate: self, tokens: tokens)
        case let .failure(error):
            if case let .overloaded(what, _) = error {
                Counter(label: "memserve_http_rejected_total", dimensions: [("reason", what.type)]).increment()
            }
            throw error
        }
    }

    fileprivate func release(tokens: Int) {
        let now = counts.withLock { c in
            c.requests -= 1
            c.tokens -= tokens
            return c
        }
        publish(now)
    }

    private func publish(_ c: Counts) {
        requestsGauge.record(c.requests)
        tokensGauge.record(c.tokens)
    }
}

/// One admitted request's share of the gate. Released once, explicitly when the request ends,
/// or by `deinit` if the path that would have (a streamed body never written) was dropped.
final class Admission: Sendable {
    private let gate: AdmissionGate
    private let tokens: Int
    private let released = Atomic<Bool>(false)

    fileprivate init(gate: AdmissionGate, tokens: Int) {
        self.gate = gate
        self.tokens = tokens
    }

    func release() {
        if released.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
            gate.release(tokens: tokens)
        }
    }

    deinit { release() }
}
