import ArgumentParser
import Foundation
import LoadGen

struct BenchServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Replay a ShareGPT-, LooGLE- or ReAct-shaped workload against any OpenAI-compatible endpoint over streaming HTTP.",
        discussion: """
            TTFT, TPOT and JCT are measured by the client from the SSE stream; prompt and cached \
            tokens come from the server's `usage`. Sessions (chats, questions, agent traces) \
            arrive as a Poisson process at --rate per second; the requests of a session follow \
            one another, each sent when the previous answer has arrived. Without --rate, \
            --concurrency sessions run at once (a closed loop).
            """)

    @Option(help: "The server's root or /v1 URL.")
    var endpoint = "http://127.0.0.1:8000"

    @Option(help: "sharegpt, loogle or react.")
    var workload: WorkloadKind

    @Option(help: "Sessions starting per second (Poisson). Omit for a closed loop.")
    var rate: Double?

    @Option(help: "Requests in all.")
    var requests = 100

    @Option(help: "Most sessions in flight (default without --rate: 8).")
    var concurrency: Int?

    @Option(help: "Seed of the workload and the arrival times.")
    var seed: UInt64 = 1

    @Option(help: "Model name to send (default: the first of /v1/models).")
    var model: String?

    @Option(name: .customLong("api-key"), help: "Bearer token (default: $OPENAI_API_KEY).")
    var apiKey: String?

    @Option(name: .customLong("max-context"), help: "Context to size sessions for, in tokens (default: max_model_len from /v1/models, else 8192).")
    var maxContext: Int?

    @Option(help: "Multiply every sampled prompt and answer length (1: the published shapes).")
    var scale = 1.0

    @Option(name: .customLong("tokens-per-word"), help: "Tokens per word assumed when sizing prompt text.")
    var tokensPerWord = TokenEstimate().tokensPerWord

    @Flag(name: .customLong("no-ignore-eos"), help: "Do not send ignore_eos (for servers that refuse it).")
    var noIgnoreEOS = false

    @Flag(help: "Print one JSON object (the summaries, without per-request records) last.")
    var json = false

    @Option(help: "Write the summaries and every request's record as JSON to this file.")
    var out: String?

    @Option(help: "Write one CSV row per request to this file.")
    var csv: String?

    func validate() throws {
        if let rate, !(rate > 0) { throw ValidationError("--rate must be positive") }
        if let concurrency, concurrency < 1 { throw ValidationError("--concurrency must be positive") }
        if requests < 1 { throw ValidationError("--requests must be positive") }
        if !(scale > 0) { throw ValidationError("--scale must be positive") }
        if !(tokensPerWord > 0) { throw ValidationError("--tokens-per-word must be positive") }
        if let maxContext, maxContext < 64 { throw ValidationError("--max-context must be at least 64") }
    }

    func run() async throws {
        var c = ReplayConfiguration(endpoint: endpoint, kind: workload)
        c.apiKey = apiKey ?? ProcessInfo.processInfo.environment["OPENAI_API_KEY"]
        c.model = model
        c.seed = seed
        c.requests = requests
        c.maxContext = maxContext
        c.lengthScale = scale
        c.tokens = TokenEstimate(tokensPerWord: tokensPerWord)
        c.arrival = ArrivalOptions(rate: rate, concurrency: concurrency ?? (rate == nil ? 8 : nil), seed: seed)
        c.settings = RequestSettings(ignoreEOS: !noIgnoreEOS)
        let result: RunResult
        do {
            result = try await Replay.run(c, observer: ProgressReporter(label: workload.rawValue))
        } catch {
            throw CLIError("\(error)")
        }
        if let out { try LoadGenJSON.encoder().encode(result).write(to: URL(fileURLWithPath: out)) }
        if let csv { try Data(CSVWriter.csv(result.records ?? []).utf8).write(to: URL(fileURLWithPath: csv)) }
        var summary = result
        summary.records = nil
        if json {
            Output.write(try LoadGenJSON.string(summary) + "\n")
            return
        }
        Output.write(Self.table(summary))
    }

    static func table(_ r: RunResult) -> String {
        func f(_ x: Double) -> String { String(format: "%.1f", x) }
        func row(_ s: Summary) -> String { "avg \(f(s.avg))  p50 \(f(s.p50))  p90 \(f(s.p90))  p99 \(f(s.p99)) ms" }
        let arrivals = r.rate.map { "Poisson \($0) sessions/s" + (r.concurrency.map { ", at most \($0) at once" } ?? "") }
            ?? "closed loop, \(r.concurrency ?? 0) sessions at once"
        let cached = r.promptTokens > 0 ? String(format: " (%.1f%% cached)", 100 * Double(r.cachedTokens) / Double(r.promptTokens)) : ""
        var rows: [(String, String)] = [
            ("endpoint", "\(r.endpoint), model \(r.model)"),
            ("workload", "\(r.workload.rawValue): \(r.sessions) sessions, \(r.requests) requests sent, \(r.errors) errors, \(r.skipped) skipped; seed \(r.seed), scale \(r.lengthScale), context \(r.maxContext)"),
            ("arrivals", arrivals),
            ("TTFT", row(r.ttftMs)),
            ("TPOT", row(r.tpotMs)),
            ("JCT", row(r.jctMs)),
            ("throughput", "\(String(format: "%.2f", r.requestsPerS)) requests/s, \(f(r.outputTokensPerS)) output tokens/s over \(f(r.durationS)) s"),
            ("tokens", "\(r.promptTokens) prompt\(cached), \(r.cachedTokens) cached, \(r.outputTokens) output"),
        ]
        if let e = r.firstError { rows.append(("first error", e)) }
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 + "\n" }.joined()
    }
}

extension WorkloadKind: ExpressibleByArgument {}
