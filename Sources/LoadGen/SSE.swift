/// Incremental parser of a server-sent-event stream (the WHATWG `text/event-stream` format):
/// bytes go in as they arrive, split anywhere (inside a line, inside a UTF-8 character, between
/// CR and LF); complete events come out. Only `data` matters to OpenAI streams; comments and
/// other fields are skipped.
public struct SSEParser: Sendable {
    /// One event: its `data` lines joined with newlines, and its `event` type if given.
    public struct Event: Sendable, Equatable {
        public var data: String
        public var type: String?

        public init(data: String, type: String? = nil) {
            self.data = data
            self.type = type
        }
    }

    private var line: [UInt8] = []
    private var data: [String] = []
    private var hasData = false
    private var type: String?
    /// The previous byte was a CR, so an LF right after it belongs to the same line end.
    private var afterCR = false

    public init() {}

    /// Feeds bytes; returns the events they complete.
    public mutating func feed<Bytes: Sequence>(_ bytes: Bytes) -> [Event] where Bytes.Element == UInt8 {
        var events: [Event] = []
        for b in bytes {
            if afterCR {
                afterCR = false
                if b == 0x0A { continue }
            }
            switch b {
            case 0x0A:
                if let e = endLine() { events.append(e) }
            case 0x0D:
                afterCR = true
                if let e = endLine() { events.append(e) }
            default:
                line.append(b)
            }
        }
        return events
    }

    /// At the end of the stream: an event whose blank line never came is still delivered (the
    /// standard drops it, but servers that close right after the last `data:` line exist).
    public mutating func finish() -> [Event] {
        afterCR = false
        if !line.isEmpty { _ = endLine() }
        return endLine().map { [$0] } ?? []
    }

    private mutating func endLine() -> Event? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            guard hasData else {
                type = nil
                return nil
            }
            let event = Event(data: data.joined(separator: "\n"), type: type)
            data.removeAll()
            hasData = false
            type = nil
            return event
        }
        if line[0] == UInt8(ascii: ":") { return nil }
        let text = String(decoding: line, as: UTF8.self)
        let field: Substring, value: Substring
        if let colon = text.firstIndex(of: ":") {
            field = text[..<colon]
            var v = text[text.index(after: colon)...]
            if v.first == " " { v = v.dropFirst() }
            value = v
        } else {
            field = Substring(text)
            value = ""
        }
        switch field {
        case "data":
            data.append(String(value))
            hasData = true
        case "event":
            type = String(value)
        default:
            break
        }
        return nil
    }
}
