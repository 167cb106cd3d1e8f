import Serving
import Hummingbird
import NIOCore
import NIOHTTPTypes
import Synchronization

/// The request context: Hummingbird's basics plus a probe of the client's connection.
struct ServerContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The client's connection as `ConnectionWatcher` sees it; nil when there is no watched
    /// socket (the router test framework), where nothing can be observed.
    let connection: ConnectionWatcher.State?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        connection = ConnectionWatcher.state(of: source.channel)
    }
}

/// Notices when a client hangs up, and closes connections whose response says so.
///
/// Hummingbird allows half-closed connections, so a client that leaves does not close the
/// channel (`isActive` stays true) until the server writes; this handler records the end of the
/// client's input (EOF) or the channel going down, for handlers that write nothing until they
/// are done.
///
/// Hummingbird closes a connection only when the *request* asked for it. A response sent with
/// `Connection: close` (413: the rest of the body is not worth reading) is therefore followed
/// here by a half-close, as nginx's lingering close does: the client reads the answer and sees
/// EOF at once, while what it still sends is read and dropped until it closes its side too, or
/// `lingering` passes. Closing both sides at once could reset the connection before a client
/// that writes its whole body first has read the answer.
final class ConnectionWatcher: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// How long a half-closed connection may go on sending before it is closed outright.
    static let lingering = TimeAmount.seconds(5)

    /// Whether the client has gone, and who wants to hear of it the moment it does.
    final class State: Sendable {
        private struct Waiters {
            var closed = false
            var next = 0
            var actions: [Int: @Sendable () -> Void] = [:]
        }

        private let waiters = Mutex(Waiters())

        var isClosed: Bool { waiters.withLock { $0.closed } }

        /// Runs `action` once when the connection closes, at once if it already has; the token
        /// cancels it (nil: it already ran).
        func onClose(_ action: @escaping @Sendable () -> Void) -> Int? {
            let token = waiters.withLock { w -> Int? in
                guard !w.closed else { return nil }
                w.next += 1
                w.actions[w.next] = action
                return w.next
            }
            if token == nil { action() }
            return token
        }

        func cancel(_ token: Int) {
            waiters.withLock { _ = $0.actions.removeValue(forKey: token) }
        }

        /// Called from the channel's events (EOF, inactive, removed); the first call wakes everyone.
        fileprivate func markClosed() {
            let actions = waiters.withLock { w -> [@Sendable () -> Void] in
                w.closed = true
                defer { w.actions = [:] }
                return Array(w.actions.values)
            }
            for action in actions { action() }
        }
    }

    /// Open watched connections by channel identity; an entry lives as long as its handler.
    private static let states = Mutex<[ObjectIdentifier: State]>([:])

    static func state(of channel: any Channel) -> State? {
        states.withLock { $0[ObjectIdentifier(channel)] }
    }

    private let state = State()
    /// The response being written asked for the connection to close.
    private var closeAfterResponse = false
    /// Our side is closed; the client's EOF ends the connection.
    private var outputClosed = false

    func handlerAdded(context: ChannelHandlerContext) {
        let key = ObjectIdentifier(context.channel), state = self.state
        Self.states.withLock { $0[key] = state }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        state.markClosed()
        let key = ObjectIdentifier(context.channel)
        Self.states.withLock { _ = $0.removeValue(forKey: key) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            state.markClosed()
            if outputClosed {
                context.close(promise: nil)
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.markClosed()
        context.fireChannelInactive()
    }

    /// The 400 Hummingbird writes itself when the HTTP parser fails: no body, no content type
    /// (every response of ours has one).
    static func isBareParseError(_ head: HTTPResponse) -> Bool {
        head.status == .badRequest && head.headerFields[.contentType] == nil && head.headerFields[.contentLength] == "0"
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case var .head(head):
            if head.headerFields[.connection]?.lowercased() == "close" { closeAfterResponse = true }
            if Self.isBareParseError(head) {
                // Hummingbird's own answer to bytes that are not HTTP/1.1: give it OpenAI's body.
                let body = ByteBuffer(string: JSONBody.encode(APIError.malformedHTTP.body))
                head.headerFields[.contentType] = "application/json"
                head.headerFields[.contentLength] = String(body.readableBytes)
                context.write(wrapOutboundOut(.head(head)), promise: nil)
                context.write(wrapOutboundOut(.body(body)), promise: promise)
                return
            }
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            guard closeAfterResponse, !outputClosed else {
                context.write(data, promise: promise)
                return
            }
            closeAfterResponse = false
            outputClosed = true
            context.writeAndFlush(data, promise: promise)
            context.close(mode: .output, promise: nil)
            let channel = context.channel
            context.eventLoop.scheduleTask(in: Self.lingering) { channel.close(promise: nil) }
        }
    }
}

/// The client hung up before its answer was complete.
struct ClientGone: Error {}

/// Relays `stream` until the client's connection closes, then fails with `ClientGone`.
///
/// Hummingbird cancels nothing when a client leaves: a streamed answer notices only at its next
/// write, and a non-streamed one (or a request still queued or in a long prefill) writes
/// nothing for a long time. The connection's close event ends the consumer's wait at once (no
/// polling); it then stops reading the engine's stream, which aborts the engine request.
func relay(_ stream: AsyncThrowingStream<RequestOutput, any Error>,
           until connection: ConnectionWatcher.State?) -> AsyncThrowingStream<RequestOutput, any Error> {
    guard let connection else { return stream }
    let (relayed, continuation) = AsyncThrowingStream<RequestOutput, any Error>.makeStream()
    let pump = Task {
        do {
            for try await output in stream { continuation.yield(output) }
            continuation.finish()
        } catch {
            continuation.finish(throwing: error)
        }
    }
    let token = Mutex<Int?>(nil)
    // Set before the close handler: a connection already closed finishes the relay at once,
    // and the pump must still be cancelled then. Cancelling the pump ends its iteration of the
    // engine's stream, whose termination aborts the engine request.
    continuation.onTermination = { _ in
        pump.cancel()
        if let t = token.withLock({ $0 }) { connection.cancel(t) }
    }
    let registered = connection.onClose { continuation.finish(throwing: ClientGone()) }
    token.withLock { $0 = registered }
    return relayed
}
