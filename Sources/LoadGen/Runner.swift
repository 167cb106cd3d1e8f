import Foundation
import Synchronization

/// How sessions arrive.
public struct ArrivalOptions: Sendable, Codable, Equatable {
    /// Sessions (conversations, questions, agent traces) starting per second, as a Poisson
    /// process; nil: all at once, bounded by `concurrency` (a closed loop).
    public var rate: Double?
    /// Most sessions in flight; nil: unbounded.
    public var concurrency: Int?
    /// Seed of the arrival times (apart from the workload's, so that the rate does not change
    /// the prompts).
    public var seed: UInt64 = 1

    public init(rate: Double? = nil, concurrency: Int? = nil, seed: UInt64 = 1) {
        self.rate = rate
        self.concurrency = concurrency
        self.seed = seed
    }

    /// Start offsets in seconds of `count` sessions.
    public func arrivalTimes(count: Int) -> [Double] {
        guard let rate, rate > 0, rate.isFinite else { return Array(repeating: 0, count: count) }
        var rng = SeededRandom(seed: seed).fork(7)
        var t = 0.0
        return (0..<count).map { _ in
            defer { t += rng.exponential(rate: rate) }
            return t
        }
    }
}

/// One request as measured by the client.
public struct RequestRecord: Codable, Sendable, Equatable {
    public var session: Int
    public var step: Int
    public var group: Int
    /// Seconds from the start of the run to sending the request.
    public var startS: Double
    public var ttftMs: Double
    public var tpotMs: Double?
    public var jctMs: Double
    public var maxTokens: Int
    public var outputTokens: Int
    /// From `usage`; nil when the server did not report it.
    public var promptTokens: Int?
    public var cachedTokens: Int?
    public var error: String?
}

/// A whole run: what was sent, and the summaries of what came back.
public struct RunResult: Codable, Sendable, Equatable {
    public var workload: WorkloadKind
    public var endpoint: String
    public var model: String
    public var seed: UInt64
    public var rate: Double?
    public var concurrency: Int?
    public var lengthScale: Double
    public var maxContext: Int
    public var sessions: Int
    /// Requests sent (successful or not).
    public var requests: Int
    public var errors: Int
    /// Requests not sent because an earlier step of their session failed.
    public var skipped: Int
    public var durationS: Double
    public var requestsPerS: Double
    public var outputTokensPerS: Double
    /// Sums over the successful requests, from `usage`.
    public var promptTokens: Int
    public var cachedTokens: Int
    public var outputTokens: Int
    public var ttftMs: Summary
    public var tpotMs: Summary
    public var jctMs: Summary
    /// How prompt lengths were sized (the real counts are `prompt_tokens`).
    public var tokenEstimate: String
    public var firstError: String?
    /// Per request; left out of `--json` on stdout.
    public var records: [RequestRecord]?

    /// Summaries of `records`.
    public init(workload: Workload, endpoint: String, model: String, arrival: ArrivalOptions, durationS: Double,
                records: [RequestRecord], skipped: Int) {
        let ok = records.filter { $0.error == nil }
        self.workload = workload.kind
        self.endpoint = endpoint
        self.model = model
        seed = workload.options.seed
        rate = arrival.rate
        concurrency = arrival.concurrency
        lengthScale = workload.options.lengthScale
        maxContext = workload.options.maxContext
        sessions = workload.sessions.count
        requests = records.count
        errors = records.count - ok.count
        self.skipped = skipped
        self.durationS = durationS
        promptTokens = ok.reduce(0) { $0 + ($1.promptTokens ?? 0) }
        cachedTokens = ok.reduce(0) { $0 + ($1.cachedTokens ?? 0) }
        outputTokens = ok.reduce(0) { $0 + $1.outputTokens }
        requestsPerS = durationS > 0 ? Double(ok.count) / durationS : 0
        outputTokensPerS = durationS > 0 ? Double(outputTokens) / durationS : 0
        ttftMs = Summary(ok.map(\.ttftMs))
        tpotMs = Summary(ok.compactMap(\.tpotMs))
        jctMs = Summary(ok.map(\.jctMs))
        tokenEstimate = String(format: "prompt text sized at %.2f tokens per word", workload.options.tokens.tokensPerWord)
        firstError = records.first { $0.error != nil }?.error
        self.records = records.sorted { ($0.startS, $0.session, $0.step) < ($1.startS, $1.session, $1.step) }
    }
}

/// Receives each request as it finishes.
public protocol RunObserver: Sendable {
    func started(total: Int)
    func finished(_ record: RequestRecord)
    func done()
}

/// Replays a workload against an endpoint.
public enum LoadRunner {
    public static func run(_ workload: Workload, client: OpenAIClient, model: String, arrival: ArrivalOptions,
                           settings: RequestSettings = RequestSettings(), observer: (any RunObserver)? = nil) async -> RunResult {
        let arrivals = arrival.arrivalTimes(count: workload.sessions.count)
        let permits = Permits(arrival.concurrency ?? Int.max)
        let clock = ContinuousClock()
        let start = clock.now
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
        observer?.started(total: workload.requestCount)
        let (records, skipped) = await withTaskGroup(of: ([RequestRecord], Int).self) { group in
            for (i, session) in workload.sessions.enumerated() {
                let wait = arrivals[i] - seconds(clock.now - start)
                if wait > 0 { try? await Task.sleep(for: .seconds(wait)) }
                await permits.acquire()
                group.addTask {
                    defer { permits.release() }
                    var answers: [String] = []
                    var records: [RequestRecord] = []
                    for step in 0..<session.steps {
                        let sent = seconds(clock.now - start)
                        let outcome = await client.stream(session.prompt(step: step, answers: answers), model: model,
                                                          maxTokens: session.maxTokens[step], settings: settings)
                        let record = RequestRecord(
                            session: session.id, step: step, group: session.group, startS: sent, ttftMs: outcome.ttftMs,
                            tpotMs: outcome.tpotMs, jctMs: outcome.jctMs, maxTokens: session.maxTokens[step],
                            outputTokens: outcome.outputTokens, promptTokens: outcome.promptTokens,
                            cachedTokens: outcome.cachedTokens, error: outcome.error)
                        records.append(record)
                        observer?.finished(record)
                        // Without its answer the conversation cannot go on.
                        if outcome.error != nil { return (records, session.steps - step - 1) }
                        answers.append(outcome.answer)
                    }
                    return (records, 0)
                }
            }
            var all: [RequestRecord] = [], skipped = 0
            for await (r, s) in group {
                all += r
                skipped += s
            }
            return (all, skipped)
        }
        observer?.done()
        return RunResult(workload: workload, endpoint: client.base, model: model, arrival: arrival,
                         durationS: seconds(clock.now - start), records: records, skipped: skipped)
    }
}

/// A counting semaphore for tasks: `acquire` suspends (no polling) until a permit is free.
final class Permits: Sendable {
    private struct State {
        var free: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state: Mutex<State>

    init(_ count: Int) { state = Mutex(State(free: count)) }

    func acquire() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { s -> Bool in
                if s.free > 0 {
                    s.free -= 1
                    return true
                }
                s.waiters.append(c)
                return false
            }
            if ready { c.resume() }
        }
    }

    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty {
                s.free += 1
                return nil
            }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}
