import Serving
import Hummingbird
import NIOCore
import NIOHTTPTypes
import Synchronization

/// The request context: Hummingbird's basics plus a probe of the client's connection.
struct ServerContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// Whether the client still has its side of the connection open; nil when there is no
    /// watched socket (the router test framework), where nothing can be observed.
    let connectionIsOpen: (@Sendable () -> Bool)?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        if let state = ConnectionWatcher.state(of: source.channel) {
            connectionIsOpen = { !state.closed.load(ordering: .relaxed) }
        } else {
            connectionIsOpen = nil
        }
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

    final class State: Sendable {
        let closed = Atomic<Bool>(false)
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
        state.closed.store(true, ordering: .relaxed)
        let key = ObjectIdentifier(context.channel)
        Self.states.withLock { _ = $0.removeValue(forKey: key) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            state.closed.store(true, ordering: .relaxed)
            if outputClosed {
                context.close(promise: nil)
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.closed.store(true, ordering: .relaxed)
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
/// nothing for a long time. Relaying ends the consumer's wait at once; it then stops reading
/// the engine's stream, which aborts the engine request.
func relay(_ stream: AsyncThrowingStream<RequestOutput, any Error>,
           whileOpen isOpen: (@Sendable () -> Bool)?) -> AsyncThrowingStream<RequestOutput, any Error> {
    guard let isOpen else { return stream }
    let (relayed, continuation) = AsyncThrowingStream<RequestOutput, any Error>.makeStream()
    let pump = Task {
        do {
            for try await output in stream { continuation.yield(output) }
            continuation.finish()
        } catch {
            continuation.finish(throwing: error)
        }
    }
    let watch = Task {
        while isOpen() {
            do { try await Task.sleep(for: .milliseconds(100)) } catch { return }
        }
        continuation.finish(throwing: ClientGone())
    }
    // Ends both tasks when the consumer stops or the relay finishes; cancelling the pump ends
    // its iteration of the engine's stream, whose termination aborts the engine request.
    continuation.onTermination = { _ in
        pump.cancel()
        watch.cancel()
    }
    return relayed
}
