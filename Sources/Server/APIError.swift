import Serving
import Foundation
import Hummingbird

/// Every way a request can fail, as the HTTP edge reports it: a status and OpenAI's error
/// body. Handlers throw these; the error middleware turns them (and anything else) into
/// responses, so no failure escapes as a bare 500 or a dropped connection.
public enum APIError: Error, Equatable, Sendable {
    /// The body is not valid JSON.
    case malformedJSON(String)
    /// The bytes are not an HTTP request (answered by the framework; the body is ours).
    case malformedHTTP
    /// A field is missing, has the wrong type, or an unusable value.
    case invalidRequest(message: String, param: String?, code: String? = nil)
    /// A field or value the server understands but does not implement.
    case unsupported(message: String, param: String?)
    /// `model` names a model this server does not serve.
    case modelNotFound(String)
    /// The prompt does not fit in the context (with room for one generated token), or the prompt
    /// plus the requested completion (`completionTokens`) does not; `param` names the field to
    /// shorten (`prompt`, `messages`, `max_tokens`), `promptParam` the prompt's field when that
    /// is not `param`. Refused rather than clamped, as vLLM does, so a client never gets a
    /// silently shorter answer than it asked for.
    case contextLengthExceeded(promptTokens: Int, completionTokens: Int? = nil, limit: Int, param: String, promptParam: String? = nil)
    /// The body is larger than the configured limit. Answered with `Connection: close`: the rest
    /// of the body is not worth reading, and a client still writing it learns at once.
    case bodyTooLarge(limit: Int)
    /// The server holds as many admitted requests (or prompt tokens) as it is configured to;
    /// `retryAfter` seconds is a hint sent as `Retry-After`.
    case overloaded(Overload, retryAfter: Int)
    /// `/v1/*` needs `Authorization: Bearer KEY` with a configured key; `provided` says whether
    /// any key came (the messages differ, as OpenAI's do).
    case unauthorized(provided: Bool)
    /// A POST body that is declared as something other than JSON.
    case unsupportedMediaType(String)
    /// No such route.
    case notFound(path: String)
    /// The route exists but not for this method.
    case methodNotAllowed(method: String, allowed: [String])
    /// The engine is draining for shutdown.
    case shuttingDown
    /// The engine failed while generating (not the client's fault).
    case generationFailed(String)
    /// An instance serving the request failed (another process, behind this front end).
    case instanceFailed(String)
    /// The client hung up before the answer was ready (nginx's 499; only metrics see it).
    case clientDisconnected
    /// Any other HTTP-level failure (raised by the framework), kept with its status.
    case http(HTTPResponse.Status, message: String)

    /// The HTTP status of this error.
    public var status: HTTPResponse.Status {
        switch self {
        case .malformedJSON, .malformedHTTP, .invalidRequest, .unsupported, .contextLengthExceeded: .badRequest
        case .overloaded: .tooManyRequests
        case .unauthorized: .unauthorized
        case .modelNotFound, .notFound: .notFound
        case .bodyTooLarge: .contentTooLarge
        case .unsupportedMediaType: .unsupportedMediaType
        case .methodNotAllowed: .methodNotAllowed
        case .shuttingDown: .serviceUnavailable
        case .generationFailed: .internalServerError
        case .instanceFailed: .badGateway
        case .clientDisconnected: HTTPResponse.Status(code: 499, reasonPhrase: "Client Closed Request")
        case let .http(status, _): status
        }
    }

    /// The body OpenAI would send for this error.
    public var body: ErrorResponse {
        let invalid = "invalid_request_error"
        let detail: ErrorResponse.Detail = switch self {
        case let .malformedJSON(why):
            .init(message: "We could not parse the JSON body of your request: \(why)", type: invalid, param: nil, code: "invalid_json")
        case .malformedHTTP:
            .init(message: "The request could not be parsed: it is not valid HTTP.", type: invalid, param: nil, code: "invalid_http")
        case let .invalidRequest(message, param, code):
            .init(message: message, type: invalid, param: param, code: code)
        case let .unsupported(message, param):
            .init(message: message, type: invalid, param: param, code: "unsupported_parameter")
        case let .modelNotFound(name):
            .init(message: "The model `\(name)` does not exist.", type: invalid, param: "model", code: "model_not_found")
        case let .contextLengthExceeded(tokens, completion, limit, param, promptParam):
            .init(message: Self.contextMessage(promptTokens: tokens, completionTokens: completion, limit: limit,
                                               field: promptParam ?? param),
                  type: invalid, param: param, code: "context_length_exceeded")
        case let .overloaded(what, _):
            .init(message: what.message, type: what.type, param: nil, code: "rate_limit_exceeded")
        case let .unauthorized(provided):
            .init(message: provided ? "Incorrect API key provided. Send a key this server accepts as 'Authorization: Bearer KEY'."
                  : "You didn't provide an API key. You need to provide your API key in an Authorization header using "
                  + "Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                  type: invalid, param: nil, code: "invalid_api_key")
        case let .bodyTooLarge(limit):
            .init(message: "The request body exceeds the limit of \(limit) bytes.", type: invalid, param: nil, code: "request_too_large")
        case let .unsupportedMediaType(type):
            .init(message: "Unsupported content type '\(type)'; send the body as application/json.",
                  type: invalid, param: nil, code: "unsupported_media_type")
        case let .notFound(path):
            .init(message: "Unknown request URL: \(path). Please check the URL for typos.", type: invalid, param: nil, code: "unknown_url")
        case let .methodNotAllowed(method, allowed):
            .init(message: "Method \(method) is not allowed here; use \(allowed.joined(separator: ", ")).",
                  type: invalid, param: nil, code: "method_not_allowed")
        case .shuttingDown:
            .init(message: "The server is shutting down.", type: "server_error", param: nil, code: "service_unavailable")
        case let .generationFailed(why):
            .init(message: "Generation failed: \(why)", type: "server_error", param: nil, code: nil)
        case let .instanceFailed(why):
            .init(message: "Generation failed: \(why)", type: "server_error", param: nil, code: "instance_failed")
        case .clientDisconnected:
            .init(message: "The client closed the connection.", type: invalid, param: nil, code: "client_closed_request")
        case let .http(status, message):
            .init(message: message, type: status.code >= 500 ? "server_error" : invalid, param: nil, code: nil)
        }
        return ErrorResponse(error: detail)
    }

    /// Maps a failure while a request streams: the engine's refusal, an instance that failed, or
    /// anything else (500).
    init(streamError error: any Error, promptParam: String) {
        if let e = error as? EngineError {
            self.init(e, promptParam: promptParam)
        } else if let e = error as? any InstanceFailure {
            self = .instanceFailed(e.description)
        } else {
            self = .generationFailed("\(error)")
        }
    }

    /// Maps the engine's refusal of a request; `promptParam` names the field that holds the prompt.
    init(_ error: EngineError, promptParam: String) {
        switch error {
        case .emptyPrompt:
            self = .invalidRequest(message: "The \(promptParam) must not be empty.", param: promptParam)
        case let .promptTooLong(tokens, limit):
            self = .contextLengthExceeded(promptTokens: tokens, limit: limit, param: promptParam)
        case let .invalidSampling(why):
            self = .invalidRequest(message: why, param: nil)
        case let .kvCacheTooSmall(needed, capacity):
            self = .invalidRequest(message: "The request needs \(needed) KV blocks but the server's cache holds \(capacity).",
                                   param: nil, code: "context_length_exceeded")
        case .invalidToken:
            self = .invalidRequest(message: error.description, param: nil)
        case .modelFailure:
            self = .generationFailed(error.description)
        case .shuttingDown:
            self = .shuttingDown
        case .duplicateRequest:
            self = .generationFailed(error.description)
        }
    }

    /// Describes a JSON decoding failure the way OpenAI does, naming the offending field.
    init(_ error: DecodingError) {
        func path(_ keys: [any CodingKey]) -> String? {
            var out = ""
            for key in keys {
                if let i = key.intValue, key.stringValue.hasPrefix("Index") || key.stringValue == "\(i)" {
                    out += "[\(i)]"
                } else {
                    out += out.isEmpty ? key.stringValue : "." + key.stringValue
                }
            }
            return out.isEmpty ? nil : out
        }
        switch error {
        case let .typeMismatch(type, context):
            guard let param = path(context.codingPath) else {
                self = .invalidRequest(message: "The request body must be a JSON object.", param: nil)
                return
            }
            let expected = Self.typeName(type, fallback: context.debugDescription)
            self = .invalidRequest(message: "Invalid type for '\(param)': expected \(expected).", param: param, code: "invalid_type")
        case let .valueNotFound(type, context):
            let param = path(context.codingPath) ?? "body"
            let expected = context.debugDescription.hasPrefix("expected ") ? Self.typeName(type, fallback: context.debugDescription)
                : Self.typeName(type, fallback: "expected a value")
            self = .invalidRequest(message: "Invalid type for '\(param)': expected \(expected), got null.",
                                   param: param, code: "invalid_type")
        case let .keyNotFound(key, context):
            let param = path(context.codingPath + [key]) ?? key.stringValue
            self = .invalidRequest(message: "Missing required parameter: '\(param)'.", param: param, code: "missing_required_parameter")
        case let .dataCorrupted(context):
            if let param = path(context.codingPath) {
                self = .invalidRequest(message: "Invalid value for '\(param)': \(context.debugDescription)", param: param,
                                       code: "invalid_value")
            } else {
                self = .malformedJSON(Self.underlyingReason(context))
            }
        @unknown default:
            self = .malformedJSON("\(error)")
        }
    }

    /// vLLM's wording, which clients and people already recognise.
    static func contextMessage(promptTokens: Int, completionTokens: Int?, limit: Int, field: String) -> String {
        guard let completionTokens else {
            let why = promptTokens > limit ? "" : ", which leaves no room for the completion"
            return "This model's maximum context length is \(limit) tokens. However, your \(field) resulted in "
                + "\(promptTokens) tokens\(why). Please reduce the length of the \(field)."
        }
        // Unsigned: a max_tokens near Int.max must not overflow the sum.
        let total = UInt(promptTokens) + UInt(completionTokens)
        return "This model's maximum context length is \(limit) tokens. However, you requested \(total) tokens "
            + "(\(promptTokens) in the \(field), \(completionTokens) in the completion). "
            + "Please reduce the length of the \(field) or completion."
    }

    private static func typeName(_ type: Any.Type, fallback: String) -> String {
        switch type {
        case is Int.Type, is Int64.Type, is Int32.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        case is Bool.Type: "a boolean"
        case is String.Type: "a string"
        case is [Any].Type: "an array"
        default:
            // Our own flexible types describe themselves ("a string or an array of ...").
            fallback.hasPrefix("expected ") ? String(fallback.dropFirst("expected ".count)) : "a different type"
        }
    }

    private static func underlyingReason(_ context: DecodingError.Context) -> String {
        if let underlying = context.underlyingError as NSError? {
            return underlying.userInfo[NSDebugDescriptionErrorKey] as? String ?? context.debugDescription
        }
        return context.debugDescription
    }
}

/// What an overloaded server has too much of; OpenAI's error `type` for it.
public enum Overload: Sendable, Equatable {
    case requests(limit: Int)
    case tokens(limit: Int)

    var type: String {
        switch self {
        case .requests: "requests"
        case .tokens: "tokens"
        }
    }

    var message: String {
        switch self {
        case let .requests(limit):
            "The server is at its limit of \(limit) queued or running requests. Please retry after a short wait."
        case let .tokens(limit):
            "The server is at its limit of \(limit) prompt tokens queued or running. Please retry after a short wait."
        }
    }
}

extension APIError: HTTPResponseError {
    /// Renders OpenAI's error body with this error's status.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        render()
    }
}

extension APIError: CustomStringConvertible {
    public var description: String { "\(status.code) \(body.error.message)" }
}
