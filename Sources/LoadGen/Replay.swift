/// `bench serve`: one workload against one endpoint, from the endpoint's URL to the summaries.
public struct ReplayConfiguration: Sendable {
    public var endpoint: String
    public var apiKey: String?
    /// nil: the first model `/v1/models` lists.
    public var model: String?
    public var kind: WorkloadKind
    /// `maxContext` nil: the model's `max_model_len` from `/v1/models`, else 8192.
    public var seed: UInt64 = 1
    public var requests: Int = 100
    public var maxContext: Int?
    public var lengthScale: Double = 1
    public var tokens = TokenEstimate()
    public var arrival = ArrivalOptions()
    public var settings = RequestSettings()

    public init(endpoint: String, kind: WorkloadKind) {
        self.endpoint = endpoint
        self.kind = kind
    }

    /// The workload this configuration sends to a model with context `maxContext`.
    public func workload(maxContext: Int) -> Workload {
        Workload(kind: kind, options: WorkloadOptions(seed: seed, requests: requests, maxContext: maxContext,
                                                     lengthScale: lengthScale, tokens: tokens))
    }
}

public enum Replay {
    /// Fallback context when the endpoint does not report one: the default model's.
    public static let defaultContext = 8192

    /// Resolves the model and its context from the endpoint, then replays the workload.
    public static func run(_ c: ReplayConfiguration, observer: (any RunObserver)? = nil) async throws -> RunResult {
        let client = try OpenAIClient(endpoint: c.endpoint, apiKey: c.apiKey)
        do {
            let result = try await run(c, client: client, observer: observer)
            await client.shutdown()
            return result
        } catch {
            await client.shutdown()
            throw error
        }
    }

    public static func run(_ c: ReplayConfiguration, client: OpenAIClient, observer: (any RunObserver)? = nil) async throws -> RunResult {
        let (model, context) = try await resolve(c, client: client)
        return await LoadRunner.run(c.workload(maxContext: context), client: client, model: model,
                                    arrival: c.arrival, settings: c.settings, observer: observer)
    }

    /// The model to name in requests and the context to size the workload for: as configured,
    /// else from `/v1/models` (a named model that is not listed, an alias, is used as named).
    public static func resolve(_ c: ReplayConfiguration, client: OpenAIClient) async throws -> (model: String, context: Int) {
        if let model = c.model, let context = c.maxContext { return (model, context) }
        let models: [ModelInfo]
        do {
            models = try await client.models()
        } catch {
            // A server without /v1/models can still be driven when the model is named.
            if let model = c.model { return (model, c.maxContext ?? defaultContext) }
            throw error
        }
        let card = c.model.flatMap { m in models.first { $0.id == m } } ?? models.first
        guard let model = c.model ?? card?.id else { throw LoadGenError.noModel("\(client.base)/v1/models lists no model") }
        return (model, c.maxContext ?? card?.maxModelLen ?? defaultContext)
    }
}
