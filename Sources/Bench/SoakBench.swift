import AsyncHTTPClient
import Foundation
import Kernels
import LoadGen
import MemPool
import NIOCore
import Serving
import Server
import Synchronization

public enum SoakError: Error, CustomStringConvertible {
    case serverDidNotStart
    public var description: String { "the soak test's HTTP server did not start" }
}

/// A long mixed load through the HTTP front end, then a check that nothing was left behind:
/// chat and completion requests, streaming or not, random `max_tokens`, stop strings, prompts
/// sharing a few long prefixes, and a share of clients that hang up mid-answer. Afterwards
/// every request must have an outcome, the pools must be idle (no block held, nothing running
/// or queued) and `/metrics` must say what the pools say. Resident memory is read after a
/// warm-up and at the end.
public enum SoakBench {
    public struct Configuration: Sendable {
        public var requests = 300
        /// Clients sending at once.
        public var concurrency = 8
        public var seed: UInt64 = 1
        /// Share of clients that disconnect before the answer ends.
        public var disconnectFraction = 1.0 / 3
        public var maxTokens = 24
        /// Requests before the first memory reading.
        public var warmup = 50
        /// Longest a single request may take before it counts as lost.
        public var requestTimeout: Duration = .seconds(120)
        public init() {}
    }

    public struct Report: Codable, Sendable {
        public var requests = 0
        public var completed = 0
        public var streamed = 0
        /// Requests the client cut off on purpose (mid-stream, or before a non-streamed answer).
        public var disconnected = 0
        /// Requests answered 4xx (a generator input the server rightly refused).
        public var refused = 0
        /// Requests without a proper outcome: 5xx, a broken or unfinished stream, a transport
        /// error, or no answer within the timeout.
        public var lost = 0
        public var lostReasons: [String: Int] = [:]
        public var seconds = 0.0
        public var rssWarmMB = 0.0
        /// Halfway: by then the KV cache's pages are usually all touched, so growth from here
        /// to the end is what a leak would show.
        public var rssHalfMB = 0.0
        public var rssEndMB = 0.0
        /// After the load, once settled: blocks held, requests running or waiting, handoffs pending.
        public var blocksLeaked = 0
        public var running = 0
        public var waiting = 0
        public var pendingHandoffs = 0
        public var hot = TierStats(capacity: 0, free: 0, used: 0, cached: 0, evictable: 0)
        /// Differences between `/metrics` and the pools' counts (empty when they agree).
        public var metricsDisagreements: [String] = []

        public var clean: Bool {
            lost == 0 && blocksLeaked == 0 && running == 0 && waiting == 0 && pendingHandoffs == 0 && metricsDisagreements.isEmpty
                && hot.free + hot.cached == hot.capacity
        }
    }

    /// One request of the load.
    struct Plan: Sendable {
        var path: String
        var body: Data
        var stream: Bool
        /// Cut after this many events (streaming) or after this many milliseconds (not); nil: read to the end.
        var cutAfter: Int?
    }

    static let prefixes: [String] = (0..<4).map { i in
        "You are assistant number \(i) of a soak test. " + String(repeating: "Remember the rules of section \(i): be brief, be exact, be kind. ", count: 2 + i)
    }
    static let questions = ["What is the capital of France?", "Count to five.", "Name a color.", "Write a haiku about the sea.",
                            "Why is the sky blue?", "Say hello in Japanese: 日本語.", "Emoji please 🙂", "List three primes."]

    static func plan(_ r: inout SplitMix64, _ c: Configuration, model: String) -> Plan {
        func pick<T>(_ a: [T]) -> T { a[Int(r.next() % UInt64(a.count))] }
        let stream = r.next() % 2 == 0
        let chat = r.next() % 3 != 0
        let prefix = pick(prefixes), question = pick(questions) + (r.next() % 2 == 0 ? "" : " (\(r.next() % 1000))")
        var body: [String: Any] = ["model": model, "max_tokens": Int(1 + r.next() % UInt64(max(1, c.maxTokens))), "stream": stream,
                                   "temperature": r.next() % 2 == 0 ? 0 : 0.8, "seed": Int(r.next() % 10_000)]
        if r.next() % 4 == 0 { body["stop"] = pick([["\n"], ["the", "."], ["a"], ["zz", "\n\n", "e"]]) }
        if chat {
            body["messages"] = [["role": "system", "content": prefix], ["role": "user", "content": question]]
        } else {
            body["prompt"] = prefix + "\n" + question
        }
        let cut = Double(r.next() % 10_000) / 10_000 < c.disconnectFraction
        return Plan(path: chat ? "/v1/chat/completions" : "/v1/completions",
                    body: (try? JSONSerialization.data(withJSONObject: body)) ?? Data(), stream: stream,
                    cutAfter: cut ? Int(stream ? 1 + r.next() % 3 : r.next() % 40) : nil)
    }

    enum Outcome: Sendable {
        case completed(streamed: Bool)
        case disconnected
        case refused
        case lost(String)
    }

    /// Drives the load at `base` (http://HOST:PORT), then checks the pools through `stats`
    /// (which must count what the front end serves from) and `/metrics`.
    public static func run(base: String, configuration c: Configuration, stats: @escaping @Sendable () -> EngineStats,
                           progress: @escaping @Sendable (String) -> Void = { _ in }) async throws -> Report {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            let report = try await load(client, base: base, configuration: c, stats: stats, progress: progress)
            try await client.shutdown()
            return report
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    static func load(_ client: HTTPClient, base: String, configuration c: Configuration, stats: @escaping @Sendable () -> EngineStats,
                     progress: @escaping @Sendable (String) -> Void) async throws -> Report {
        let model = try await modelName(client, base)
        var report = Report()
        report.requests = c.requests
        let start = ContinuousClock.now
        let state = LoadState(seed: c.seed, report: report)
        
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<max(1, c.concurrency) {
                group.addTask {
                    while true {
                        let item: (Int, Plan)? = state.next.withLock { n in
                            guard n.index < c.requests else { return nil }
                            n.index += 1
                            return (n.index, plan(&n.random, c, model: model))
                        }
                        guard let (index, p) = item else { return }
                        let outcome = await send(p, base: base, client: client, timeout: c.requestTimeout)
                        state.results.withLock { r in
                            switch outcome {
                            case .completed(let streamed):
                                r.completed += 1
                                if streamed { r.streamed += 1 }
                            case .disconnected: r.disconnected += 1
                            case .refused: r.refused += 1
                            case .lost(let why):
                                r.lost += 1
                                r.lostReasons[why, default: 0] += 1
                            }
                        }
                        if index == c.warmup { state.warmRSS.withLock { $0 = residentMegabytes() } }
                        if index == c.requests / 2 { state.halfRSS.withLock { $0 = residentMegabytes() } }
                        if index % 1000 == 0 { progress("\(index) of \(c.requests) requests") }
                    }
                }
            }
        }
        report = state.results.withLock { $0 }
        let elapsed = ContinuousClock.now - start
        report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        report.rssWarmMB = state.warmRSS.withLock { $0 } ?? residentMegabytes()
        report.rssHalfMB = state.halfRSS.withLock { $0 } ?? report.rssWarmMB
        // Requests cut off are aborted asynchronously on the engine threads: let them settle.
        let settled = try await settle(stats)
        report.rssEndMB = residentMegabytes()
        report.blocksLeaked = settled.hot.used
        report.running = settled.running
        report.waiting = settled.waiting
        report.pendingHandoffs = settled.pendingHandoffs
        report.hot = settled.hot
        report.metricsDisagreements = try await compareMetrics(client, base, settled)
        return report
    }

    /// Serves `backend` over HTTP on a free loopback port for the length of one `run`. Call
    /// `PrometheusBootstrap.registry()` before creating the backend, so its metrics are exported.
    public static func runInProcess(backend: any InferenceBackend, configuration: Configuration,
                                    progress: @escaping @Sendable (String) -> Void = { _ in }) async throws -> Report {
        let limits = LoadLimits(maxRequests: 4096, maxTokens: 1 << 24)
        let server = MemServeServer(engine: backend, configuration: ServerConfiguration(host: "127.0.0.1", port: 0, limits: limits))
        let (ports, sink) = AsyncStream<Int>.makeStream()
        let group = server.makeServiceGroup(handleSignals: false) { port in sink.yield(port) }
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var it = ports.makeAsyncIterator()
            guard let port = await it.next() else { throw SoakError.serverDidNotStart }
            do {
                let report = try await run(base: "http://127.0.0.1:\(port)", configuration: configuration, stats: { backend.stats },
                                           progress: progress)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return report
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
        }
    }

    /// What the clients of one run share.
    final class LoadState: Sendable {
        let next: Mutex<(index: Int, random: SplitMix64)>
        let results: Mutex<Report>
        let warmRSS = Mutex<Double?>(nil)
        let halfRSS = Mutex<Double?>(nil)
        init(seed: UInt64, report: Report) {
            next = Mutex((0, SplitMix64(seed: seed)))
            results = Mutex(report)
        }
    }

    /// The first served model name.
    static func modelName(_ client: HTTPClient, _ base: String) async throws -> String {
        let response = try await client.execute(HTTPClientRequest(url: base + "/v1/models"), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        let json = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
        return ((json?["data"] as? [[String: Any]])?.first?["id"] as? String) ?? "default"
    }

    static func send(_ p: Plan, base: String, client: HTTPClient, timeout: Duration) async -> Outcome {
        var request = HTTPClientRequest(url: base + p.path)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: p.body))
        let task = Task { () -> Outcome in
            do {
                let response = try await client.execute(request, timeout: .seconds(Int64(timeout.components.seconds)))
                if (400..<500).contains(Int(response.status.code)) { return .refused }
                if response.status.code != 200 { return .lost("status \(response.status.code)") }
                var parser = SSEParser(), events = 0, done = false, bytes = 0
                for try await buffer in response.body {
                    bytes += buffer.readableBytes
                    guard p.stream else { continue }
                    for e in parser.feed(buffer.readableBytesView) {
                        if e.data == "[DONE]" { done = true }
                        else if e.data.hasPrefix(#"{"error""#) { return .lost("error event") }
                        events += 1
                        if let cut = p.cutAfter, events >= cut {
                            // Hang up: cancelling the request closes its connection.
                            withUnsafeCurrentTask { $0?.cancel() }
                        }
                    }
                }
                if p.stream { return done ? .completed(streamed: true) : .lost("stream without [DONE]") }
                return bytes > 0 ? .completed(streamed: false) : .lost("empty body")
            } catch {
                if Task.isCancelled { return .disconnected }
                return .lost("transport: \(type(of: error))")
            }
        }
        if !p.stream, let ms = p.cutAfter {
            try? await Task.sleep(for: .milliseconds(ms))
            task.cancel()
        }
        return await task.value
    }

    /// The backend's counts once nothing is running, queued or held (bounded: what is still
    /// there after 30 s is what the report shows).
    static func settle(_ stats: @Sendable () -> EngineStats) async throws -> EngineStats {
        var s = stats()
        for _ in 0..<3000 {
            if s.running == 0 && s.waiting == 0 && s.hot.used == 0 && s.pendingHandoffs == 0 { break }
            try await Task.sleep(for: .milliseconds(10))
            s = stats()
        }
        return s
    }

    /// What `/metrics` reports that differs from `stats`.
    static func compareMetrics(_ client: HTTPClient, _ base: String, _ s: EngineStats) async throws -> [String] {
        let response = try await client.execute(HTTPClientRequest(url: base + "/metrics"), timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 16 << 20))
        var values: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let v = Double(line[line.index(after: space)...]) else { continue }
            values[String(line[..<space])] = v
        }
        let expected: [(String, Int)] = [
            (#"memserve_kv_blocks{tier="hot",state="used"}"#, s.hot.used),
            (#"memserve_kv_blocks{tier="hot",state="cached"}"#, s.hot.cached),
            (#"memserve_kv_blocks{tier="hot",state="free"}"#, s.hot.free),
            ("memserve_requests_running", s.running),
            ("memserve_queue_length", s.waiting),
        ]
        return expected.compactMap { name, want in
            let got = values[name] ?? values.first { key, _ in Self.sameSeries(key, name) }?.value
            guard let got else { return "\(name) missing" }
            return got == Double(want) ? nil : "\(name) = \(got), the pools say \(want)"
        }
    }

    /// Whether two series names are the same up to the order of their labels.
    static func sameSeries(_ a: String, _ b: String) -> Bool {
        func parts(_ s: String) -> (String, Set<Substring>) {
            guard let brace = s.firstIndex(of: "{") else { return (s, []) }
            return (String(s[..<brace]), Set(s[s.index(after: brace)...].dropLast().split(separator: ",")))
        }
        return parts(a) == parts(b)
    }

    /// Resident set size of this process in MiB (Linux: /proc/self/statm), 0 where unknown.
    public static func residentMegabytes() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Double(fields[1]) else { return 0 }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / Double(1 << 20)
    }
}
