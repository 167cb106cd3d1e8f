import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A single-member etcd on loopback in its own temporary directory, for tests and development.
/// `start` returns once etcd serves clients (it watches etcd's log for that, no polling).
/// `kill` simulates a crash and keeps the data so `restart` can bring the same member back on
/// the same ports; `stop` ends etcd for good and removes its directory.
public struct EtcdProcess: Sendable {
    public let binary: String
    public let name: String
    public let host: String
    public let clientPort: Int
    public let peerPort: Int
    /// The temporary directory that holds etcd's data directory.
    public let directory: String
    private let monitor: ProcessMonitor

    /// The URL clients connect to, `http://HOST:PORT`.
    public var clientURL: String { "http://\(host):\(clientPort)" }
    public var dataDirectory: String { directory + "/data" }
    public var pid: Int32 { monitor.pid }
    /// The last lines etcd logged (for failure messages).
    public var logTail: String { monitor.logTail }

    /// Where `etcd` is: the first executable `etcd` on PATH, else `/usr/bin/etcd`.
    public static func findBinary() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let candidates = path.split(separator: ":").map { "\($0)/etcd" } + ["/usr/bin/etcd"]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw EtcdProcessError.binaryNotFound(searched: candidates)
        }
        return found
    }

    /// Starts etcd on free loopback ports in a fresh temporary directory.
    public static func start(binary: String? = nil, name: String = "memserve-etcd", host: String = "127.0.0.1",
                             readyTimeout: Duration = .seconds(30)) async throws -> EtcdProcess {
        let binary = try binary ?? findBinary()
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw EtcdProcessError.binaryNotFound(searched: [binary])
        }
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("memserve-etcd-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // A port found free can be taken before etcd binds it; a few fresh tries cover that race.
        let attempts = 3
        for attempt in 1...attempts {
            do {
                let ports = try (freeLoopbackPort(host: host), freeLoopbackPort(host: host))
                return try await launch(binary: binary, name: name, host: host, clientPort: ports.0,
                                        peerPort: ports.1, directory: directory, readyTimeout: readyTimeout)
            } catch EtcdProcessError.exited(_, let log) where attempt < attempts && log.contains("address already in use") {
                try? FileManager.default.removeItem(atPath: directory + "/data")
            } catch {
                try? FileManager.default.removeItem(atPath: directory)
                throw error
            }
        }
        preconditionFailure("the last attempt returns or throws")
    }

    /// Starts the same member again on the same ports, killing this process first if it still
    /// runs. With `freshData` the data directory is wiped first (etcd forgets keys and leases).
    public func restart(freshData: Bool = false, readyTimeout: Duration = .seconds(30)) async throws -> EtcdProcess {
        if monitor.exitStatus == nil { await kill() }
        if freshData { try? FileManager.default.removeItem(atPath: dataDirectory) }
        return try await Self.launch(binary: binary, name: name, host: host, clientPort: clientPort,
                                     peerPort: peerPort, directory: directory, readyTimeout: readyTimeout)
    }

    /// SIGTERM, wait for exit (SIGKILL if etcd takes longer than `timeout`), remove the directory.
    public func stop(timeout: Duration = .seconds(10)) async {
        if monitor.exitStatus == nil {
            monitor.signal(SIGTERM)
            if (try? await withDeadline(timeout, onTimeout: CancellationError(), { await monitor.waitForExit() })) == nil {
                await kill()
            }
        }
        removeDirectory()
    }

    /// SIGKILL and wait for exit; the data directory stays for `restart`.
    public func kill() async {
        guard monitor.exitStatus == nil else { return }
        monitor.signal(SIGKILL)
        _ = await monitor.waitForExit()
    }

    /// Removes the temporary directory (after `kill`, when the data is no longer wanted).
    public func removeDirectory() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func launch(binary: String, name: String, host: String, clientPort: Int, peerPort: Int,
                               directory: String, readyTimeout: Duration) async throws -> EtcdProcess {
        let clientURL = "http://\(host):\(clientPort)"
        let peerURL = "http://\(host):\(peerPort)"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "--name", name,
            "--data-dir", directory + "/data",
            "--listen-client-urls", clientURL,
            "--advertise-client-urls", clientURL,
            "--listen-peer-urls", peerURL,
            "--initial-advertise-peer-urls", peerURL,
            "--initial-cluster", "\(name)=\(peerURL)",
            "--initial-cluster-state", "new",
            "--logger", "zap",
            "--log-outputs", "stderr",
        ]
        // ETCD_* variables would override or conflict with the flags above.
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ETCD_") }
        process.standardInput = FileHandle.nullDevice
        let monitor = ProcessMonitor()
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
            } else {
                monitor.logged(data)
            }
        }
        process.terminationHandler = { finished in monitor.exited(finished.terminationStatus) }
        do {
            try process.run()
        } catch {
            pipe.fileHandleForReading.readabilityHandler = nil
            throw EtcdProcessError.launchFailed(binary: binary, reason: "\(error)")
        }
        monitor.started(pid: process.processIdentifier)
        let etcd = EtcdProcess(binary: binary, name: name, host: host, clientPort: clientPort, peerPort: peerPort,
                               directory: directory, monitor: monitor)
        do {
            try await withDeadline(readyTimeout, onTimeout: EtcdProcessError.notReady(timeout: readyTimeout, log: monitor.logTail)) {
                try await monitor.waitUntilReady()
            }
        } catch {
            await etcd.kill()
            throw error
        }
        return etcd
    }
}

/// What can go wrong starting etcd.
public enum EtcdProcessError: Error, CustomStringConvertible, Sendable {
    case binaryNotFound(searched: [String])
    case launchFailed(binary: String, reason: String)
    case exited(status: Int32, log: String)
    case notReady(timeout: Duration, log: String)
    case noFreePort(reason: String)

    public var description: String {
        switch self {
        case .binaryNotFound(let searched):
            "etcd not found (looked at \(searched.joined(separator: ", "))); install it with `scripts/setup.sh --tests` (Debian's etcd-server)"
        case .launchFailed(let binary, let reason): "could not launch \(binary): \(reason)"
        case .exited(let status, let log): "etcd exited with status \(status) before serving clients; its log ends:\n\(log)"
        case .notReady(let timeout, let log): "etcd did not serve clients within \(timeout); its log ends:\n\(log)"
        case .noFreePort(let reason): "no free loopback port: \(reason)"
        }
    }
}

/// A port that nothing listens on right now: bind port 0 and read what the kernel chose.
func freeLoopbackPort(host: String) throws -> Int {
    #if canImport(Glibc)
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { throw EtcdProcessError.noFreePort(reason: "socket: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
        throw EtcdProcessError.noFreePort(reason: "\(host) is not an IPv4 address")
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
            bind(fd, socketAddress, length) == 0 && getsockname(fd, socketAddress, &length) == 0
        }
    }
    guard bound else { throw EtcdProcessError.noFreePort(reason: "bind: errno \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}
