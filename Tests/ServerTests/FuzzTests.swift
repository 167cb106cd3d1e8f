import Foundation
import Hummingbird
import HummingbirdTesting
import PropertyBased
import Synchronization
import Testing
@testable import Server

/// Fuzzing the HTTP edge over a synthetic model: no crash, no hang, never a 5xx, and every 4xx
/// carries OpenAI's error body. The suite runs a few hundred cases; MEMSERVE_FUZZ_CASES=N
/// (scripts/fuzz-http.sh) runs more. A failure prints the case's seed: add it to
/// `regressionSeeds` so it runs on every test run after the fix.
@Suite("Fuzzed HTTP requests: 4xx with OpenAI's body, never 5xx, no hang", .serialized)
struct FuzzTests {
    static let cases = ProcessInfo.processInfo.environment["MEMSERVE_FUZZ_CASES"].flatMap(Int.init) ?? 400
    static let rawCases = max(40, cases / 8)
    /// Per request: far above what any answer of the tiny model takes.
    static let deadline: Duration = .seconds(20)
    /// Seeds that once found a bug (none yet from the generator: the bugs of issue 11 were
    /// found by hand and are kept in `badCases`).
    static let regressionSeeds: [UInt64] = []

    static func harness() throws -> Harness {
        try Harness.make(maxBodyBytes: 4 << 20, limits: LoadLimits(maxRequests: 64))
    }

    /// What must hold for any response; returns the problems found.
    static func problems(_ request: FuzzRequest, status: HTTPResponse.Status, contentType: String?, body: String) -> [String] {
        var found: [String] = []
        if status.code >= 500 { found.append("\(status.code) \(body.prefix(300))") }
        if status.code >= 400 {
            guard request.method != .head else { return found }
            let object = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
            guard let error = object?["error"] as? [String: Any] else { return found + ["\(status.code) without an error body: \(body.prefix(300))"] }
            if !Set(error.keys).isSuperset(of: ["message", "type", "param", "code"]) { found.append("error body lacks keys: \(body.prefix(300))") }
            if (error["message"] as? String ?? "").isEmpty { found.append("empty error message") }
            if !(contentType ?? "").hasPrefix("application/json") { found.append("error with content type \(contentType ?? "none")") }
        } else if status == .ok && request.isGeneration {
            if contentType == "text/event-stream" {
                let events = SSE.payloads(body)
                if events.last != "[DONE]" { found.append("stream without [DONE]: \(body.suffix(300))") }
                if events.contains(where: { $0.hasPrefix(#"{"error""#) }) { found.append("error event in a 200 stream: \(body.prefix(300))") }
            } else if (try? JSONSerialization.jsonObject(with: Data(body.utf8))) == nil {
                found.append("200 without a JSON body")
            }
        }
        return found
    }

    /// Runs `work` with a deadline; nil when it did not finish in time (the work is left behind).
    static func withDeadline<T: Sendable>(_ limit: Duration, _ work: @escaping @Sendable () async throws -> T) async throws -> T? {
        let done = Mutex(false)
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T?, any Error>) in
            let finish: @Sendable (Result<T?, any Error>) -> Void = { result in
                if done.withLock({ d in defer { d = true }; return !d }) { continuation.resume(with: result) }
            }
            let timer = Task {
                try? await Task.sleep(for: limit)
                finish(.success(nil))
            }
            Task {
                do { finish(.success(try await work())) } catch { finish(.failure(error)) }
                // A finished case leaves no sleeper behind (a long run would pile them up).
                timer.cancel()
            }
        }
    }

    /// Statuses seen, for the summary line a run prints (the README's figures).
    static let tally = Mutex<[String: Int]>([:])

    static func count(_ key: String) { tally.withLock { $0[key, default: 0] += 1 } }

    static func summary(_ label: String) -> String {
        let counts = tally.withLock { t in defer { t = [:] }; return t }
        return "fuzz \(label): \(counts.values.reduce(0, +)) inputs; " + counts.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
    }

    static func send(_ request: FuzzRequest, _ client: any TestClientProtocol) async throws {
        let response = try await withDeadline(deadline) {
            try await client.execute(uri: request.uri, method: request.method, headers: request.headers,
                                     body: request.body.isEmpty && request.method != .post ? nil : ByteBuffer(bytes: request.body))
        }
        guard let response else {
            count("hang")
            Issue.record("no answer within \(deadline): \(request)")
            return
        }
        count(String(response.status.code))
        for problem in problems(request, status: response.status, contentType: response.headers[.contentType], body: String(buffer: response.body)) {
            Issue.record("\(problem)\n  request: \(request)")
        }
    }

    /// After the run: nothing left running, queued or holding KV blocks, and a plain request works.
    static func checkIdle(_ harness: Harness, _ client: any TestClientProtocol) async throws {
        let engine = harness.engine
        let idle = await eventually(60) { engine.stats.running + engine.stats.waiting == 0 && engine.stats.hot.used == 0 }
        #expect(idle, "engine not idle after the fuzz run: \(engine.stats)")
        let after = try await client.post("/v1/completions", #"{"prompt":"still fine","max_tokens":3}"#)
        #expect(after.status == .ok, "\(after.text)")
    }

    @Test("bodies, headers, methods and paths from a seeded generator")
    func requests() async throws {
        let harness = try Self.harness()
        let gen = Generator(run: { rng in FuzzInputs.request(seed: rng.next()) })
        try await harness.withRouter { client in
            await propertyCheck(count: Self.cases, input: gen) { request in
                try await Self.send(request, client)
            }
            print(Self.summary("requests"))
            try await Self.checkIdle(harness, client)
        }
    }

    @Test("seeds that once found a bug", .enabled(if: !regressionSeeds.isEmpty))
    func regressions() async throws {
        let harness = try Self.harness()
        try await harness.withRouter { client in
            for seed in Self.regressionSeeds { try await Self.send(FuzzInputs.request(seed: seed), client) }
            try await Self.checkIdle(harness, client)
        }
    }

    @Test("broken HTTP framing on a real socket: an answer or a close within the deadline, never a 5xx")
    func rawSockets() async throws {
        let harness = try Self.harness()
        try await harness.withLiveServer { port in
            var seeds = SplitMix(seed: UInt64.random(in: 0...UInt64.max))
            for _ in 0..<Self.rawCases {
                let seed = seeds.next()
                let (bytes, recipe) = FuzzInputs.rawRequest(seed: seed)
                let (answer, timedOut) = try await onThread { () -> ([UInt8], Bool) in
                    let connection = try RawConnection(port: port)
                    defer { connection.close() }
                    connection.setReceiveTimeout(seconds: 10)
                    connection.send(bytes)
                    connection.finishSending()
                    return connection.readAll()
                }
                let text = String(decoding: answer, as: UTF8.self)
                Self.count(timedOut ? "hang" : text.isEmpty ? "closed" : String(text.dropFirst(9).prefix(3)))
                #expect(!timedOut, "raw seed \(seed) (\(recipe)): neither answered nor closed in 10 s; got \(text.prefix(200))")
                // Every response on the connection (pipelined requests get several).
                let responses = text.components(separatedBy: "HTTP/1.").dropFirst()
                if !text.isEmpty { #expect(text.hasPrefix("HTTP/1."), "raw seed \(seed) (\(recipe)): \(text.prefix(200))") }
                for response in responses {
                    let status = Int(response.dropFirst(2).prefix(3)) ?? 0
                    #expect((200..<500).contains(status), "raw seed \(seed) (\(recipe)): \(response.prefix(400))")
                    if status >= 400 {
                        #expect(response.contains(#""error":{"#), "raw seed \(seed) (\(recipe)): 4xx without OpenAI's body: \(response.prefix(400))")
                    }
                }
            }
            print(Self.summary("raw HTTP"))
            let engine = harness.engine
            #expect(await eventually(60) { engine.stats.running + engine.stats.waiting == 0 && engine.stats.hot.used == 0 })
        }
    }
}
