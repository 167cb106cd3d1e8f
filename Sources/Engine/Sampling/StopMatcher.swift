/// Finds stop strings in streamed text and holds back text that could still become one, so a
/// client never sees part of a stop string (the OpenAI / llama.cpp server behaviour).
public struct StopMatcher: Sendable {
    public let stops: [String]
    private var pending = ""
    private let longest: Int

    public init(stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }
        longest = self.stops.map(\.count).max() ?? 0
    }

    /// Text held back because it could still become a stop string.
    public var heldText: String { pending }

    /// A matcher continuing elsewhere with `held` already held back.
    public init(stops: [String], held: String) {
        self.init(stops: stops)
        pending = held
    }

    /// Feeds new text; returns the text safe to emit and whether a stop string was hit (the
    /// returned text then ends right before it).
    public mutating func feed(_ text: String) -> (emit: String, stopped: Bool) {
        if stops.isEmpty { return (text, false) }
        pending += text
        var first: String.Index?
        for s in stops {
            if let r = pending.range(of: s), first.map({ r.lowerBound < $0 }) ?? true { first = r.lowerBound }
        }
        if let first {
            let out = String(pending[..<first])
            pending = ""
            return (out, true)
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        var hold = 0
        let maxHold = min(longest - 1, pending.count)
        if maxHold > 0 {
            for len in stride(from: maxHold, through: 1, by: -1) {
                let suffix = pending.suffix(len)
                if stops.contains(where: { $0.hasPrefix(suffix) }) { hold = len; break }
            }
        }
        let cut = pending.index(pending.endIndex, offsetBy: -hold)
        let out = String(pending[..<cut])
        pending = String(pending[cut...])
        return (out, false)
    }

    /// Text still held back when generation ends for another reason.
    public mutating func flush() -> String {
        defer { pending = "" }
        return pending
    }
}
