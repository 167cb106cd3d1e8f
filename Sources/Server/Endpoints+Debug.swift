import Foundation
import Hummingbird
import Serving

// Debug endpoints of a routing backend: why a prompt would go where it goes, and what the
// global prompt trees hold. 404 when the backend is a single engine.

/// A body naming the prompt either way: `messages` (chat) or `prompt` (completions).
struct DebugRouteRequest: Decodable {
    var messages: ChatCompletionRequest?
    var prompt: CompletionRequest?

    init(from decoder: any Decoder) throws {
        let keys = try decoder.container(keyedBy: AnyKey.self)
        if keys.contains(AnyKey("messages")) {
            messages = try ChatCompletionRequest(from: decoder)
        } else {
            prompt = try CompletionRequest(from: decoder)
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

extension Endpoints {
    private var routing: (any RoutingIntrospection)? { engine as? any RoutingIntrospection }

    /// `POST /debug/route`: the body of a completion or chat request; the answer lists every
    /// candidate instance's matched tokens, load and score, and the choice. Nothing is sent.
    func debugRoute(_ request: Request, _ context: ServerContext) async throws(APIError) -> Response {
        guard let routing else { throw .http(.notFound, message: "This server has no router: it runs one engine.") }
        let body = try await JSONBody.decode(DebugRouteRequest.self, from: request, limit: configuration.maxBodyBytes)
        let plan = if let chat = body.messages { try planner.plan(chat) } else { try planner.plan(body.prompt!) }
        let served = ServingRequest(promptTokens: plan.promptTokens, sampling: plan.sampling, traceID: "debug",
                                    session: plan.user ?? request.headers[Self.sessionHeader])
        return Self.json(routing.explainRoute(served))
    }

    /// `GET /debug/trees`: the global prompt trees' sizes per instance.
    func debugTrees() throws(APIError) -> Response {
        guard let routing else { throw .http(.notFound, message: "This server has no router: it runs one engine.") }
        return Self.json(routing.treeSummary())
    }

    private static func json(_ data: Data) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
