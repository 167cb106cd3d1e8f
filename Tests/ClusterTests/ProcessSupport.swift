import Router
import Cluster
import Engine
import Foundation
import GRPCCore
import Model
import Synchronization
import Testing
import Wire

/// A `memserve instance` child process on loopback.
final class InstanceProcess: Sendable {
    let process: Process
    let address: PeerAddress
    let role: String

    private init(process: Process, address: PeerAddress, role: String) {
        self.process = process
        self.address = address
        self.role = role
    }

    /// The `memserve` binary built with the tests (same build folder as the test bundle).
    static func binary() throws -> URL {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("memserve")
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for candidate in [besideTests, root.appendingPathComponent(".build/debug/memserve")]
        where FileManager.default.isExecutableFile(atPath: candidate.path) {
            return candidate
        }
        throw RemoteError.noPeer("no memserve binary next to the tests (\(besideTests.path)); build it with `swift build`")
    }

    /// Starts an instance and waits until it prints its address.
    static func start(role: String, mode: PDMode, model: String, listen: String = "127.0.0.1:0",
                      extra: [String] = []) async throws -> InstanceProcess {
        let args = ["instance", "--role", role, "--pd-mode", mode.rawValue, "--listen", listen, "--model", model,
                    "--threads", "1", "--max-context", "4096", "--max-batch-tokens", "64", "--kv-mb", "32"] + extra
        let (process, address) = try await launch(args, name: role, prefix: "listening on grpc://")
        return InstanceProcess(process: process, address: try PeerAddress(parsing: address), role: role)
    }

    /// Starts `memserve serve` as a front end over `peers`; returns it and its base URL.
    static func serve(peers: [PeerAddress], model: String) async throws -> (InstanceProcess, URL) {
        let args = ["serve", "--port", "0", "--model", model, "--threads", "1", "--max-context", "4096",
                    "--peers", peers.map(\.description).joined(separator: ",")]
        let (process, url) = try await launch(args, name: "serve", prefix: "listening on ")
        return (InstanceProcess(process: process, address: PeerAddress(host: "127.0.0.1", port: 0), role: "serve"), URL(string: url)!)
    }

    /// Runs `memserve ARGS` and waits (30 s at most) for the stdout line starting with `prefix`;
    /// returns the rest of that line.
    static func launch(_ arguments: [String], name: String, prefix: String) async throws -> (Process, String) {
        let process = Process()
        process.executableURL = try binary()
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        // The process's log, for a failing test to show (left in the temporary folder).
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("memserve-test-\(getpid())-\(name)-\(UInt32.random(in: 0...UInt32.max)).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        let line = Promise<String>()
        // A thread, not a task: the read blocks.
        Thread.detachNewThread {
            var text = ""
            while true {
                let data = out.fileHandleForReading.availableData
                if data.isEmpty { break }
                text += String(decoding: data, as: UTF8.self)
                if let l = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
                    line.succeed(String(l.dropFirst(prefix.count)))
                }
            }
            line.fail(RemoteError.noPeer("memserve \(name) exited before listening (log: \(log.path))"))
        }
        let timeout = Task {
            try await Task.sleep(for: .seconds(30))
            line.fail(RemoteError.noPeer("memserve \(name) did not listen within 30 s (log: \(log.path))"))
        }
        defer { timeout.cancel() }
        do {
            return (process, try await line.value())
        } catch {
            process.terminate()
            throw error
        }
    }

    /// SIGKILL: the process dies at once, mid-whatever it was doing.
    func kill() {
        signalProcess(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM and wait (graceful drain).
    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}

/// The synthetic model as a file, for instances in other processes (long context: requests in
/// the failure tests must still be generating when a process is killed).
enum ProcessModel {
    static let shape: SyntheticModel.Shape = {
        var s = SyntheticModel.Shape()
        s.contextLength = 4096
        s.layers = 4
        return s
    }()

    static let path: String = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("memserve-test-\(getpid())-synthetic.gguf")
        try! Data(SyntheticModel.gguf(shape)).write(to: url)
        return url.path
    }()

    static let loaded: LoadedModel = {
        var options = ModelOptions()
        options.maxBatchTokens = 64
        options.maxContext = 4096
        return try! LoadedModel(path: path, options: options, threads: 1)
    }()
}

extension RawPeer {
    func info() async throws -> Memserve_V1_InstanceInfo {
        try await client.info(Memserve_V1_InfoRequest())
    }

    /// Waits until the instance runs `count` requests (so they are generating there now).
    func waitRunning(_ count: Int) async throws -> Bool {
        for _ in 0..<1000 {
            if try await info().stats.running >= count { return true }
            try await Task.sleep(for: .milliseconds(2))
        }
        return false
    }

    /// Waits until the instance holds no block for a request and runs nothing.
    func waitIdle(seconds: Double = 10) async throws -> EngineStats {
        var s = EngineStats()
        for _ in 0..<Int(seconds * 100) {
            s = EngineStats(wire: try await info().stats)
            if LocalNodes.idle(s) { return s }
            try await Task.sleep(for: .milliseconds(10))
        }
        return s
    }

    /// A handoff from a prefill instance that dies after sending `chunks` of its KV chunks.
    func abandonedHandoff(tokens: [Int32], blockTokens: Int, blockBytes: Int, chunks: Int) async -> RPCError? {
        let accepted = Promise<Int>()
        let blocks = (tokens.count - 1 + blockTokens - 1) / blockTokens
        let request = StreamingClientRequest<Memserve_V1_HandoffMessage> { writer in
            var h = Memserve_V1_HandoffMessage()
            h.header.tokens = tokens
            h.header.promptCount = Int64(tokens.count - 1)
            h.header.sampling = RawPeer.request([], maxTokens: 8).sampling
            h.header.blockCount = Int64(blocks)
            h.header.blockBytes = Int64(blockBytes)
            try await writer.write(h)
            let have = try await accepted.value()
            for i in 0..<chunks {
                var c = Memserve_V1_HandoffMessage()
                c.chunk.firstBlock = Int64(have + i)
                c.chunk.data = Data(repeating: 3, count: blockBytes)
                try await writer.write(c)
            }
            throw CancellationError()
        }
        do {
            try await client.handoff(request: request, options: PeerClients.callOptions) { response in
                defer { accepted.fail(CancellationError()) }
                for try await r in response.messages {
                    if case let .accepted(a)? = r.part { accepted.succeed(Int(a.haveBlocks)) }
                }
            }
            return nil
        } catch let e as RPCError {
            return e
        } catch {
            return RPCError(code: .unknown, message: "\(error)")
        }
    }
}

/// `kill(2)` (a free function: inside `InstanceProcess`, `kill` names the method).
private func signalProcess(_ pid: Int32, _ signal: Int32) {
    _ = kill(pid, signal)
}
