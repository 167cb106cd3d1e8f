import Serving
import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle

/// Where and how the HTTP server listens, and whom and how much it serves.
public struct ServerConfiguration: Sendable {
    /// Address to bind: loopback by default, so a server started without `apiKeys` is reachable
    /// only from this machine until it is told otherwise.
    public var host: String
    /// Port to bind; 0 picks a free one (reported through `onListening`).
    public var port: Int
    /// Largest accepted request body; larger ones get 413 and the connection is closed.
    public var maxBodyBytes: Int
    /// Sent as `system_fingerprint` in completions (nil leaves the field out).
    public var systemFingerprint: String?
    /// Names clients may call the model by (the first is listed first and returned in
    /// responses); empty: the model's own name.
    public var servedModelNames: [String]
    /// Generation requests and prompt tokens held at once; past them, 429.
    public var limits: LoadLimits
    /// Keys accepted as `Authorization: Bearer KEY`; empty: no authentication.
    public var apiKeys: APIKeys
    /// `/metrics` needs a key too (`/health` never does).
    public var metricsRequireKey: Bool

    public init(host: String = "127.0.0.1", port: Int = 8000, maxBodyBytes: Int = 4 << 20,
                systemFingerprint: String? = "fp_memserve", servedModelNames: [String] = [],
                limits: LoadLimits = LoadLimits(), apiKeys: APIKeys = APIKeys([]), metricsRequireKey: Bool = false) {
        self.servedModelNames = servedModelNames
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.systemFingerprint = systemFingerprint
        self.limits = limits
        self.apiKeys = apiKeys
        self.metricsRequireKey = metricsRequireKey
    }

    /// Whether `host` can only be reached from this machine.
    public var isLoopback: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

/// The OpenAI-compatible HTTP server over an `InferenceBackend` (one engine, or a PD cluster).
///
/// Routes: `POST /v1/completions`, `POST /v1/chat/completions`, `GET /v1/models`,
/// `GET /v1/models/{id}`, `GET /health`, `GET /metrics`. Unknown top-level request fields are
/// ignored (as OpenAI does); wrong types, unknown message roles, unsupported features
/// (n > 1, logprobs, tools, batched prompts) and requests that do not fit the context are
/// refused with 400 and OpenAI's error body; overload gets 429, a missing or wrong API key 401.
public struct MemServeServer: Sendable {
    public let engine: any InferenceBackend
    public let configuration: ServerConfiguration
    /// The registry `/metrics` exports (the one bootstrapped as the swift-metrics backend).
    public let registry: PrometheusCollectorRegistry
    let logger: Logger

    /// - Parameters:
    ///   - engine: the running engine; its `model` is the one served.
    ///   - registry: what `/metrics` exports; defaults to `PrometheusBootstrap.registry()`.
    public init(engine: any InferenceBackend, configuration: ServerConfiguration = ServerConfiguration(),
                registry: PrometheusCollectorRegistry? = nil, logger: Logger = Logger(label: "memserve.server")) {
        self.engine = engine
        self.configuration = configuration
        self.registry = registry ?? PrometheusBootstrap.registry()
        self.logger = logger
    }

    /// Longest prompt plus completion the server accepts: the model's context, or the KV
    /// cache's size if that is smaller (known once the engine thread has published its stats,
    /// right after it starts).
    public var tokenLimit: Int {
        let context = engine.servedModel.maxContext
        let cacheTokens = engine.tokenCapacity
        return cacheTokens > 0 ? min(context, cacheTokens) : context
    }

    /// The Hummingbird application: routes, error handling, metrics. It does not run the engine;
    /// `run` or `makeServiceGroup` put both under one lifecycle.
    /// - Parameter onListening: called with the bound port once the server accepts connections.
    public func makeApplication(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let endpoints = Endpoints(
            engine: engine, server: self, configuration: configuration, registry: registry,
            startTime: Int(Date().timeIntervalSince1970), logger: logger, gate: AdmissionGate(limits: configuration.limits))
        if !configuration.isLoopback && configuration.apiKeys.isEmpty {
            logger.warning("listening on \(configuration.host) without API keys: anyone who reaches this address can use the server")
        }

        let routes: [String: [HTTPRequest.Method]] = [
            "/v1/completions": [.post], "/v1/chat/completions": [.post],
            "/v1/models": [.get], "/health": [.get], "/metrics": [.get],
            "/debug/route": [.post], "/debug/trees": [.get],
        ]
        let router = Router(context: ServerContext.self)
        // Added before the routes: middleware applies only to routes registered after it.
        router.add(middleware: EdgeMiddleware(routes: routes, logger: logger))
        router.add(middleware: APIKeyMiddleware(keys: configuration.apiKeys,
                                                openPaths: configuration.metricsRequireKey ? ["/health"] : ["/health", "/metrics"]))
        router.post("/v1/completions") { request, context in try await endpoints.completions(request, context) }
        router.post("/v1/chat/completions") { request, context in try await endpoints.chatCompletions(request, context) }
        router.get("/v1/models") { _, _ in endpoints.models() }
        router.get("/v1/models/{id}") { _, context in try endpoints.model(named: context.parameters.get("id") ?? "") }
        router.get("/health") { _, _ in endpoints.health() }
        router.get("/metrics") { _, _ in endpoints.metrics() }
        router.post("/debug/route") { request, context in try await endpoints.debugRoute(request, context) }
        router.get("/debug/trees") { _, _ in try endpoints.debugTrees() }

        return Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: [ConnectionWatcher()])),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "memserve"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    /// The application and the engine under one service group. On graceful shutdown the
    /// server stops accepting and finishes in-flight requests first; the engine drains after.
    /// - Parameter handleSignals: shut down gracefully on SIGTERM and SIGINT.
    /// - Parameter extraServices: run between the engine and the app (e.g. a membership feed).
    public func makeServiceGroup(handleSignals: Bool = true, extraServices: [any Service] = [],
                                 onListening: @escaping @Sendable (Int) async -> Void = { _ in }) -> ServiceGroup {
        // Services shut down in reverse order: the app (which still needs the engine for its
        // in-flight requests) before the engine.
        ServiceGroup(configuration: .init(
            services: [engine] + extraServices + [makeApplication(onListening: onListening)],
            gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [],
            logger: logger))
    }

    /// Serves until SIGTERM or SIGINT, then drains and returns.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try await makeServiceGroup(handleSignals: true, onListening: onListening).run()
    }
}
