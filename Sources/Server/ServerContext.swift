import Hummingbird
import NIOCore
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

/// Notices when a client hangs up. Hummingbird allows half-closed connections, so a client
/// that leaves does not close the channel (`isActive` stays true) until the server writes;
/// this handler records the end of the client's input (EOF) or the channel going down, for
/// handlers that write nothing until they are done.
final class ConnectionWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Never

    final class State: Sendable {
        let closed = Atomic<Bool>(false)
    }

    /// Open watched connections by channel identity; an entry lives as long as its handler.
    private static let states = Mutex<[ObjectIdentifier: State]>([:])

    static func state(of channel: any Channel) -> State? {
        states.withLock { $0[ObjectIdentifier(channel)] }
    }

    private let state = State()

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
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.closed.store(true, ordering: .relaxed)
        context.fireChannelInactive()
    }
}

/// Runs `operation` (which must end promptly when cancelled) while polling the connection;
/// if the client hangs up first, cancels it and throws `CancellationError`.
///
/// Hummingbird cancels nothing when a client leaves, and a non-streamed answer writes nothing
/// until it is complete, so without this a vanished client would keep its engine request
/// running to `max_tokens`.
func untilDisconnect<T: Sendable>(_ isOpen: (@Sendable () -> Bool)?,
                                  _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    guard let isOpen else { return try await operation() }
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            while isOpen() { try await Task.sleep(for: .milliseconds(50)) }
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw CancellationError() }
        return value
    }
}
