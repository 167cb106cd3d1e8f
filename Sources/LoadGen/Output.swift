import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// JSON in the shape the reports and `scripts/plot_bench.py` read: snake_case keys, sorted.
public enum LoadGenJSON {
    public static func encoder(pretty: Bool = true) -> JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    public static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }

    public static func string(_ value: some Encodable, pretty: Bool = true) throws -> String {
        String(decoding: try encoder(pretty: pretty).encode(value), as: UTF8.self)
    }
}

/// One row per request.
public enum CSVWriter {
    public static let header = "session,step,group,start_s,ttft_ms,tpot_ms,jct_ms,max_tokens,output_tokens,prompt_tokens,cached_tokens,error"

    public static func csv(_ records: [RequestRecord]) -> String {
        func f(_ x: Double?) -> String { x.map { String(format: "%.3f", $0) } ?? "" }
        func i(_ x: Int?) -> String { x.map(String.init) ?? "" }
        var lines = [header]
        for r in records {
            lines.append([i(r.session), i(r.step), i(r.group), f(r.startS), f(r.ttftMs), f(r.tpotMs), f(r.jctMs),
                          i(r.maxTokens), i(r.outputTokens), i(r.promptTokens), i(r.cachedTokens), quote(r.error ?? "")]
                .joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// RFC 4180 quoting for fields with commas, quotes or line breaks.
    static func quote(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// Progress on stderr: a bar redrawn in place on a terminal, a plain line every tenth of the
/// run otherwise (logs and CI).
public final class ProgressReporter: RunObserver {
    private struct State {
        var total = 0
        var done = 0
        var errors = 0
        var lastDecile = -1
        var ttft: [Double] = []
    }
    private let state = Mutex(State())
    private let label: String
    private let isTerminal: Bool

    public init(label: String, isTerminal: Bool = isatty(STDERR_FILENO) != 0) {
        self.label = label
        self.isTerminal = isTerminal
    }

    public func started(total: Int) {
        state.withLock { $0.total = total }
        if !isTerminal { write("\(label): \(total) requests\n") }
    }

    public func finished(_ record: RequestRecord) {
        let line: String? = state.withLock { s in
            s.done += 1
            if record.error != nil { s.errors += 1 } else { s.ttft.append(record.ttftMs) }
            let fraction = s.total > 0 ? Double(s.done) / Double(s.total) : 1
            let median = s.ttft.isEmpty ? 0 : Statistics.percentile(s.ttft.sorted(), 50)
            let stats = "\(s.done)/\(s.total) requests, \(s.errors) errors, TTFT p50 \(String(format: "%.0f", median)) ms"
            if isTerminal {
                let width = 30, filled = Int(fraction * Double(width))
                return "\r\u{1B}[K\(label) [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] " + stats
            }
            let decile = Int(fraction * 10)
            guard decile > s.lastDecile else { return nil }
            s.lastDecile = decile
            return "\(label): \(stats)\n"
        }
        if let line { write(line) }
    }

    public func done() {
        if isTerminal { write("\n") }
    }

    private func write(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
}
