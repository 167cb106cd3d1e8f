import AsyncHTTPClient
import NIOCore

/// What a watch stream carries inside the module: etcd's confirmation that the watch exists
/// (which tells a reconnecting consumer that etcd works again), then events.
enum WatchItem: Sendable {
    case created
    case event(WatchEvent)
}

extension EtcdClient {
    /// Watches every key starting with `prefix` from `fromRevision` on (inclusive). The stream
    /// never finishes normally: it throws `EtcdError` when the watch breaks (etcd stopped,
    /// history compacted, connection lost), and the HTTP request is cancelled as soon as the
    /// consumer stops iterating.
    public func watch(prefix: String, fromRevision: Int64) -> AsyncThrowingStream<WatchEvent, Error> {
        stream(prefix: prefix, fromRevision: fromRevision) { continuation, item in
            if case .event(let event) = item { continuation.yield(event) }
        }
    }

    func watchItems(prefix: String, fromRevision: Int64) -> AsyncThrowingStream<WatchItem, Error> {
        stream(prefix: prefix, fromRevision: fromRevision) { continuation, item in continuation.yield(item) }
    }

    private func stream<Element: Sendable>(
        prefix: String, fromRevision: Int64,
        forward: @escaping @Sendable (AsyncThrowingStream<Element, Error>.Continuation, WatchItem) -> Void
    ) -> AsyncThrowingStream<Element, Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: Element.self)
        let task = Task {
            do {
                try await runWatch(prefix: prefix, fromRevision: fromRevision) { forward(continuation, $0) }
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private func runWatch(prefix: String, fromRevision: Int64, yield: (WatchItem) -> Void) async throws {
        let path = "/watch"
        let start = prefix.isEmpty ? [0] : Array(prefix.utf8)
        let create = WatchCreateRequest(create_request: .init(
            key: JSONBytes(start), range_end: JSONBytes(prefixRangeEnd(Array(prefix.utf8))),
            start_revision: JSONInt64(fromRevision)))
        let request = try makeRequest(path, body: create)
        let response: HTTPClientResponse
        do {
            // The deadline covers only the wait for the response head; the body streams on.
            response = try await httpClient.execute(request, timeout: .nanoseconds(requestTimeout.nanoseconds))
        } catch let error as CancellationError {
            throw error
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw unreachable(String(describing: error))
        }
        guard response.status == .ok else {
            var buffer = (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()
            throw gatewayError(path: path, status: Int(response.status.code),
                               body: buffer.readBytes(length: buffer.readableBytes) ?? [])
        }
        var lines = LineBuffer()
        do {
            for try await chunk in response.body {
                for line in lines.append(chunk) {
                    for item in try items(in: line, path: path) { yield(item) }
                }
            }
        } catch let error as EtcdError {
            throw error
        } catch let error as CancellationError {
            throw error
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw unreachable(String(describing: error))
        }
        throw EtcdError.watchClosed
    }

    private func items(in line: [UInt8], path: String) throws -> [WatchItem] {
        let message: WatchStreamMessage = try decode(line, path: path)
        if let error = message.error { throw EtcdError.watchCanceled(reason: error.message) }
        guard let result = message.result else { return [] }
        if result.canceled == true {
            if let compacted = result.compact_revision?.value, compacted > 0 {
                throw EtcdError.compacted(compactRevision: compacted)
            }
            throw EtcdError.watchCanceled(reason: result.cancel_reason ?? "no reason given")
        }
        let events: [WatchItem] = (result.events ?? []).compactMap { event in
            guard let kv = event.kv?.keyValue else { return nil }
            let kind: WatchEvent.Kind = event.type == "DELETE" ? .delete : .put
            return .event(WatchEvent(kind: kind, key: kv.key, value: kind == .put ? kv.value : [],
                                     modRevision: kv.modRevision, lease: kv.lease))
        }
        return result.created == true ? [.created] + events : events
    }
}

/// Reassembles newline-delimited messages from arbitrarily split chunks.
struct LineBuffer {
    private var pending: [UInt8] = []

    mutating func append(_ chunk: ByteBuffer) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        for byte in chunk.readableBytesView {
            if byte == UInt8(ascii: "\n") {
                if !pending.isEmpty { lines.append(pending) }
                pending.removeAll(keepingCapacity: true)
            } else {
                pending.append(byte)
            }
        }
        return lines
    }
}
