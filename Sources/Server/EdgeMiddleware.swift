import Dispatch
import Hummingbird
import Logging
import Metrics

/// The outermost middleware: every failure becomes an OpenAI error body (unknown routes 404,
/// known routes with the wrong method 405), and every response is counted by route and status.
struct EdgeMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Route path → methods it serves; answers "405 or 404?" for unmatched requests.
    let routes: [String: [HTTPRequest.Method]]
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let response: Response
        var route = context.endpointPath ?? "unmatched"
        do {
            response = try await next(request, context)
        } catch let error as APIError {
            response = error.render()
        } catch let error as HTTPError where error.status == .notFound && context.endpointPath == "NotFound" {
            // The router found no handler for this method and path.
            let path = request.uri.path
            if let methods = routes[path] ?? routes[String(path.dropLast())] {
                route = routes[path] != nil ? path : String(path.dropLast())
                response = APIError.methodNotAllowed(method: request.method.rawValue, allowed: methods.map(\.rawValue)).render()
            } else {
                route = "unmatched"
                response = APIError.notFound(path: path).render()
            }
        } catch let error as any HTTPResponseError {
            response = APIError.http(error.status, message: "\(error)").render()
        } catch {
            logger.error("unhandled error", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            response = APIError.http(.internalServerError, message: "Internal server error.").render()
        }
        if route == "NotFound" { route = "unmatched" }
        let dimensions = [("route", route), ("method", request.method.rawValue), ("status", String(response.status.code))]
        Counter(label: "memserve_http_requests_total", dimensions: dimensions).increment()
        Metrics.Timer(label: "memserve_http_response_head_seconds", dimensions: [("route", route), ("method", request.method.rawValue)])
            .recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds &- start))
        return response
    }
}

extension APIError {
    /// The error as a response (OpenAI's body; `Allow` for 405).
    func render() -> Response {
        var response = JSONBody.response(body, status: status)
        switch self {
        case let .methodNotAllowed(_, allowed):
            response.headers[.allow] = allowed.joined(separator: ", ")
        case .bodyTooLarge:
            // `ConnectionWatcher` closes the connection once this response is out.
            response.headers[.connection] = "close"
        case let .overloaded(_, retryAfter):
            response.headers[.retryAfter] = String(retryAfter)
        case .unauthorized:
            response.headers[.wwwAuthenticate] = "Bearer"
        default:
            break
        }
        return response
    }
}
