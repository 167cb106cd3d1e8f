import Engine
import Foundation
import Testing
@testable import Server

/// Tests over real sockets: the server and engine run under their service group on a free
/// loopback port.
@Suite("Live server: disconnects, graceful shutdown, the official openai client", .serialized)
struct LiveServerTests {
    /// A long streamed completion: 16k tokens (seconds of work even for the tiny model), so it
    /// is still running when the test acts.
    static let longStream = #"{"prompt":"Count:","max_tokens":16000,"ignore_eos":true,"temperature":0,"stream":true}"#

    static func longHarness() throws -> Harness {
        try Harness.make(contextLength: 16384, maxContext: 16384, blocks: 1040)
    }

    /// `memserve_requests_aborted_total` as exported.
    static func abortedCount(_ server: MemServeServer) -> Int {
        let line = server.registry.emitToString().split(separator: "\n").first { $0.hasPrefix("memserve_requests_aborted_total ") }
        return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
    }

    @Test("a client that hangs up mid-stream has its engine request aborted and its blocks freed")
    func disconnectAborts() async throws {
        let harness = try Self.longHarness()
        let engine = harness.engine, server = harness.server
        let abortedBefore = Self.abortedCount(server)
        try await harness.withLiveServer { port in
            let connection = try RawConnection(port: port)
            connection.sendPOST("/v1/completions", json: Self.longStream)
            let head = try await onThread { connection.read(until: "\"text\"") }
            #expect(head.hasPrefix("HTTP/1.1 200"))
            #expect(engine.stats.running == 1)
            connection.close()
            // Generation would take seconds more; the abort must come at the next failed write.
            let freed = await eventually(3) { engine.stats.running + engine.stats.waiting == 0 && engine.stats.hot.used == 0 }
            #expect(freed, "request still running after the client left: \(engine.stats)")
            // Freed because it was aborted, not because it happened to finish.
            #expect(Self.abortedCount(server) > abortedBefore)
        }
    }

    @Test("a client that stops reading a long stream does not hold up other requests")
    func slowConsumer() async throws {
        let harness = try Self.longHarness()
        let engine = harness.engine
        try await harness.withLiveServer { port in
            let slow = try RawConnection(port: port)
            slow.setReceiveBuffer(bytes: 4096)
            slow.sendPOST("/v1/completions", json: Self.longStream)
            let head = try await onThread { slow.read(until: "\"text\"") }
            #expect(head.hasPrefix("HTTP/1.1 200"))
            // From here on it reads nothing; the others are served while it sits there.
            for i in 0..<4 {
                let other = try RawConnection(port: port)
                other.sendPOST("/v1/completions", json: #"{"prompt":"Other \#(i):","max_tokens":8,"temperature":0}"#)
                let answer = try await onThread { other.readToEnd() }
                #expect(answer.hasPrefix("HTTP/1.1 200") && answer.contains("\"choices\""), "request \(i) beside a stalled reader: \(answer.prefix(200))")
                other.close()
            }
            #expect(engine.stats.running >= 1, "the slow stream is still going: \(engine.stats)")
            slow.close()
            let freed = await eventually(10) { engine.stats.running + engine.stats.waiting == 0 && engine.stats.hot.used == 0 }
            #expect(freed, "the stalled stream's request ends when its client leaves: \(engine.stats)")
        }
    }

    @Test("a client that hangs up before a non-streamed answer is ready has its request aborted")
    func disconnectAbortsNonStreamed() async throws {
        let harness = try Self.longHarness()
        let engine = harness.engine, server = harness.server
        let abortedBefore = Self.abortedCount(server)
        try await harness.withLiveServer { port in
            let connection = try RawConnection(port: port)
            connection.sendPOST("/v1/completions", json: #"{"prompt":"Count:","max_tokens":16000,"ignore_eos":true}"#)
            let started = await eventually(3) { engine.stats.running == 1 }
            #expect(started)
            connection.close()
            let freed = await eventually(3) { engine.stats.running + engine.stats.waiting == 0 && engine.stats.hot.used == 0 }
            #expect(freed, "request still running after the client left: \(engine.stats)")
            #expect(Self.abortedCount(server) > abortedBefore)
        }
    }

    @Test("graceful shutdown lets an in-flight stream finish, then refuses new connections")
    func gracefulShutdown() async throws {
        let harness = try Harness.make()
        let (ports, sink) = AsyncStream<Int>.makeStream()
        let group = harness.server.makeServiceGroup(handleSignals: false) { sink.yield($0) }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var it = ports.makeAsyncIterator()
            let port = try #require(await it.next())
            let connection = try RawConnection(port: port)
            connection.sendPOST("/v1/completions",
                                json: #"{"prompt":"Hello","max_tokens":150,"ignore_eos":true,"stream":true}"#)
            let head = try await onThread { connection.read(until: "\"text\"") }
            #expect(head.hasPrefix("HTTP/1.1 200"))
            await group.triggerGracefulShutdown()
            let rest = try await onThread { connection.readToEnd() }
            connection.close()
            #expect(rest.contains("data: [DONE]"), "stream cut short by shutdown")
            #expect(rest.contains(#""finish_reason":"length""#))
            try await tasks.waitForAll()
            #expect(harness.engine.isStopped)
            #expect(throws: (any Error).self) { _ = try RawConnection(port: port) }
        }
    }

    static var openAIAvailable: Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import openai"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }

    static var scriptPath: String {
        // Tests/ServerTests/LiveServerTests.swift → repository root.
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/openai_client_test.py").path
    }

    @Test("the official openai Python client passes scripts/openai_client_test.py", .enabled(if: openAIAvailable))
    func openAIClient() async throws {
        let harness = try Harness.make(contextLength: 1024, maxContext: 1024, blocks: 128)
        let script = Self.scriptPath
        let (status, output) = try await harness.withLiveServer { port in
            try await onThread { () -> (Int32, String) in
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                process.arguments = ["python3", script, "http://127.0.0.1:\(port)/v1", "--model", "synthetic"]
                let pipe = Pipe()
                process.standardOutput = pipe
                process.standardError = pipe
                try process.run()
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                return (process.terminationStatus, String(decoding: data, as: UTF8.self))
            }
        }
        #expect(status == 0, "openai_client_test.py failed:\n\(output)")
        #expect(output.contains(" 0 failed"), "\(output)")
    }
}
