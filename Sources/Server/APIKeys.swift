import Hummingbird

/// The keys a client may present as `Authorization: Bearer KEY`, compared in constant time so
/// a response's timing says nothing about how much of a guess was right.
public struct APIKeys: Sendable, Equatable {
    private let keys: [[UInt8]]

    /// Empty and blank keys are dropped; no keys at all means no authentication.
    public init(_ keys: [String]) {
        self.keys = keys.map { Array($0.utf8) }.filter { !$0.isEmpty }
    }

    public var isEmpty: Bool { keys.isEmpty }

    /// Whether `presented` is one of the keys. Every key is compared, each over its own full
    /// length, whatever matched before: the time depends only on the configured keys.
    func accepts(_ presented: some Collection<UInt8>) -> Bool {
        let given = Array(presented)
        var matched = false
        for key in keys {
            var diff = UInt(bitPattern: key.count ^ given.count)
            for i in 0..<key.count {
                diff |= UInt(key[i] ^ (i < given.count ? given[i] : 0))
            }
            matched = matched || diff == 0
        }
        return matched
    }

    /// The key of an `Authorization` header value (`Bearer KEY`, the scheme in any case), if
    /// it is one.
    static func bearerToken(_ header: String) -> Substring? {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].drop { $0 == " " }
        return token.isEmpty ? nil : token
    }
}

/// Requires a key on every route but the open ones (`/health`, and `/metrics` unless it is
/// configured to need a key too), so load balancers and scrapers keep working without one.
/// Sits inside `EdgeMiddleware`, which renders its 401 as OpenAI's error body.
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let keys: APIKeys
    let openPaths: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var path = request.uri.path
        if path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        if keys.isEmpty || openPaths.contains(path) { return try await next(request, context) }
        guard let header = request.headers[.authorization] else { throw APIError.unauthorized(provided: false) }
        guard let token = APIKeys.bearerToken(header), keys.accepts(token.utf8) else {
            throw APIError.unauthorized(provided: true)
        }
        return try await next(request, context)
    }
}
