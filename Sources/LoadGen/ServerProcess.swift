import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A `memserve serve` child process: started with `--port 0`, its address read from the
/// `listening on http://HOST:PORT` line it prints on stdout; stderr goes to a log file.
public final class ServerProcess: Sendable {
    public let url: String
    let child: ChildProcess

    public var pid: Int32 { child.pid }

    private init(url: String, child: ChildProcess) {
        self.url = url
        self.child = child
    }

    /// Starts `executable arguments` and returns once it has printed its address.
    public static func start(executable: String, arguments: [String], log: URL,
                             timeout: Duration = .seconds(300)) async throws -> ServerProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdout = Pipe()
        process.standardOutput = stdout
        guard FileManager.default.createFile(atPath: log.path, contents: nil),
              let logHandle = try? FileHandle(forWritingTo: log) else {
            throw LoadGenError.server("cannot write the server log \(log.path)")
        }
        process.standardError = logHandle
        let (exits, exitSink) = AsyncStream<Int32>.makeStream()
        process.terminationHandler = { p in
            exitSink.yield(p.terminationStatus)
            exitSink.finish()
        }
        let (lines, lineSink) = AsyncStream<String>.makeStream()
        let pending = Mutex<[UInt8]>([])
        stdout.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                lineSink.finish()
                return
            }
            let complete: [String] = pending.withLock { buffer in
                buffer.append(contentsOf: data)
                var out: [String] = []
                while let nl = buffer.firstIndex(of: 0x0A) {
                    out.append(String(decoding: buffer[..<nl], as: UTF8.self))
                    buffer.removeSubrange(...nl)
                }
                return out
            }
            for line in complete { lineSink.yield(line) }
        }
        do {
            try process.run()
        } catch {
            throw LoadGenError.server("cannot start \(executable): \(error)")
        }
        let child = ChildProcess(pid: process.processIdentifier, exits: exits)
        let address: String?
        do {
            address = try await withThrowingTaskGroup(of: String?.self) { group in
                group.addTask {
                    for await line in lines {
                        if let r = line.range(of: "listening on ") {
                            return String(line[r.upperBound...]).trimmingCharacters(in: .whitespaces)
                        }
                    }
                    return nil
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    throw LoadGenError.server("no `listening on` line from the server within \(timeout)")
                }
                defer { group.cancelAll() }
                return try await group.next() ?? nil
            }
        } catch {
            await child.stop(grace: .seconds(5))
            throw error
        }
        guard let address else {
            let status = await child.waitForExit()
            throw LoadGenError.server("the server exited (status \(status.map(String.init) ?? "?")) before listening; see \(log.path)")
        }
        return ServerProcess(url: address, child: child)
    }

    /// Sends SIGTERM and waits for the exit (SIGKILL after `grace`); returns the exit status.
    @discardableResult
    public func stop(grace: Duration = .seconds(30)) async -> Int32? {
        await child.stop(grace: grace)
    }
}

/// A started process and its exit status, delivered once by its termination handler.
final class ChildProcess: Sendable {
    let pid: Int32
    private let exits: Mutex<AsyncStream<Int32>?>
    private let status = Mutex<Int32?>(nil)

    init(pid: Int32, exits: AsyncStream<Int32>) {
        self.pid = pid
        self.exits = Mutex(exits)
    }

    @discardableResult
    func stop(grace: Duration) async -> Int32? {
        if let s = status.withLock({ $0 }) { return s }
        kill(pid, SIGTERM)
        let pid = self.pid
        let killer = Task {
            try await Task.sleep(for: grace)
            kill(pid, SIGKILL)
        }
        defer { killer.cancel() }
        return await waitForExit()
    }

    func waitForExit() async -> Int32? {
        guard let stream = exits.withLock({ s -> AsyncStream<Int32>? in
            defer { s = nil }
            return s
        }) else { return status.withLock { $0 } }
        var last: Int32?
        for await s in stream { last = s }
        status.withLock { $0 = last }
        return last
    }
}

/// Runs a command to its end and returns its stdout (nil if it could not start or failed).
public func runCommand(_ executable: String, _ arguments: [String], directory: String? = nil) async -> String? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    let (exits, sink) = AsyncStream<Int32>.makeStream()
    process.terminationHandler = { p in
        sink.yield(p.terminationStatus)
        sink.finish()
    }
    do { try process.run() } catch { return nil }
    // Read to EOF before waiting, so a large output cannot fill the pipe and block the child.
    let data = out.fileHandleForReading.readDataToEndOfFile()
    var status: Int32 = -1
    for await s in exits { status = s }
    return status == 0 ? String(decoding: data, as: UTF8.self) : nil
}

/// What the report says about the machine.
public struct MachineInfo: Codable, Sendable, Equatable {
    public var cpu: String
    public var cores: Int
    public var memoryGib: Double
    public var os: String
    public var commit: String?

    /// This machine; `commit` from `git rev-parse HEAD` in the working directory, marked
    /// "(modified)" when `git status` shows uncommitted changes.
    public static func current() async -> MachineInfo {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let cpu = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let kib = meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal") }
            .flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Double($0) }
        var commit = await runCommand("/usr/bin/env", ["git", "rev-parse", "HEAD"])?.trimmingCharacters(in: .whitespacesAndNewlines)
        if commit != nil, let status = await runCommand("/usr/bin/env", ["git", "status", "--porcelain", "--untracked-files=no"]),
           !status.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            commit! += " (modified)"
        }
        return MachineInfo(cpu: cpu, cores: ProcessInfo.processInfo.activeProcessorCount,
                           memoryGib: ((kib ?? 0) / 1_048_576 * 10).rounded() / 10,
                           os: ProcessInfo.processInfo.operatingSystemVersionString, commit: commit)
    }
}
