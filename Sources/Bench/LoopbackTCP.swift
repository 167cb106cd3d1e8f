import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Raw TCP throughput over 127.0.0.1 with plain sockets: the ceiling any network KV transfer
/// in this process could reach on this machine, measured beside it so the gRPC figure has a
/// reference that moves with the machine's load.
enum LoopbackTCP {
    /// Why the measurement could not run.
    enum Failure: Error, Sendable, CustomStringConvertible {
        /// A socket call failed with `errno`.
        case call(String, errno: Int32)
        /// The peer closed (or the sender failed) before every byte arrived.
        case shortTransfer(received: Int, expected: Int)
        /// Nothing connected or arrived within the deadline.
        case timedOut(String)

        var description: String {
            switch self {
            case let .call(name, e): "loopback TCP: \(name) failed: \(String(cString: strerror(e)))"
            case let .shortTransfer(received, expected): "loopback TCP: received \(received) of \(expected) bytes"
            case let .timedOut(what): "loopback TCP: timed out waiting to \(what)"
            }
        }
    }

    /// Bytes per `send`/`recv` call: large, so system-call overhead does not count.
    static let ioBytes = 4 << 20
    /// Kernel socket buffers asked for (the kernel may cap them at `net.core.*mem_max`).
    static let socketBuffer: Int32 = 8 << 20
    /// How long to wait for a connection or for data before giving up.
    static let timeoutMilliseconds: Int32 = 10_000

    /// Best-of-`reps` GB/s of one sender thread writing `bytes` (from one `ioBytes` buffer) to a
    /// receiver reading them on this thread, each repetition over a fresh connection.
    static func gbps(bytes: Int, reps: Int = 3) throws(Failure) -> Double {
        let listener = try makeSocket()
        defer { close(listener) }
        var address = loopback(port: 0)
        try check("bind", withSockaddr(&address) { bind(listener, $0, $1) })
        try setBuffer(listener, SO_RCVBUF) // accepted connections inherit it
        try check("listen", listen(listener, 4))
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try check("getsockname", withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        })
        let port = in_port_t(bigEndian: address.sin_port)

        let buffer = UnsafeMutableRawPointer.allocate(byteCount: ioBytes, alignment: 4096)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: ioBytes)
        var best = Double.infinity
        for _ in 0..<max(1, reps) {
            best = min(best, try once(listener: listener, port: port, bytes: bytes, buffer: buffer))
        }
        return Double(bytes) / best
    }

    /// One connection: returns the nanoseconds from starting the sender to the last byte read.
    private static func once(listener: Int32, port: in_port_t, bytes: Int, buffer: UnsafeMutableRawPointer) throws(Failure) -> Double {
        let sender = SenderOutcome()
        let t0 = DispatchTime.now().uptimeNanoseconds
        let thread = Thread {
            defer { sender.finished.signal() }
            do throws(Failure) { try send(bytes: bytes, port: port) } catch { sender.failure.withLock { $0 = error } }
        }
        thread.name = "memserve-tcp-sender"
        thread.start()
        let received = Result { () throws(Failure) -> Int in try receive(listener: listener, bytes: bytes, buffer: buffer) }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - t0)
        // Bounded: the receiver closed its end, and the sender's writes time out.
        sender.finished.wait()
        // The sender's error (e.g. connect refused) explains a receiver timeout, so it goes first.
        if let failure = sender.failure.withLock({ $0 }) { throw failure }
        let n = try received.get()
        guard n == bytes else { throw .shortTransfer(received: n, expected: bytes) }
        return elapsed
    }

    /// What the sender thread reports back.
    private final class SenderOutcome: Sendable {
        let failure = Mutex<Failure?>(nil)
        let finished = DispatchSemaphore(value: 0)
    }

    /// Accepts one connection and reads until `bytes` arrived or the peer closed; returns the count.
    private static func receive(listener: Int32, bytes: Int, buffer: UnsafeMutableRawPointer) throws(Failure) -> Int {
        try wait(for: listener, what: "accept a connection")
        let connection = accept(listener, nil, nil)
        try check("accept", connection)
        defer { close(connection) }
        var received = 0
        while received < bytes {
            try wait(for: connection, what: "receive data")
            let n = recv(connection, buffer, min(ioBytes, bytes - received), 0)
            if n < 0 && errno == EINTR { continue }
            try check("recv", n)
            if n == 0 { break }
            received += n
        }
        return received
    }

    /// The sender thread: connects and writes `bytes` from one buffer in `ioBytes` writes.
    private static func send(bytes: Int, port: in_port_t) throws(Failure) {
        let s = try makeSocket()
        defer { close(s) }
        try setBuffer(s, SO_SNDBUF)
        var timeout = timeval(tv_sec: Int(timeoutMilliseconds / 1000), tv_usec: 0)
        try check("setsockopt", setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)))
        var address = loopback(port: port)
        try check("connect", withSockaddr(&address) { connect(s, $0, $1) })
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: ioBytes, alignment: 4096)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 7, count: ioBytes)
        var sent = 0
        while sent < bytes {
            #if canImport(Glibc)
            let n = Glibc.send(s, buffer, min(ioBytes, bytes - sent), Int32(MSG_NOSIGNAL))
            #else
            let n = Darwin.send(s, buffer, min(ioBytes, bytes - sent), 0)
            #endif
            if n < 0 && errno == EINTR { continue }
            try check("send", n)
            sent += n
        }
    }

    private static func makeSocket() throws(Failure) -> Int32 {
        #if canImport(Glibc)
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let s = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        try check("socket", s)
        return s
    }

    /// Asks for a large kernel buffer (set before connect/accept so the TCP window scales).
    private static func setBuffer(_ s: Int32, _ option: Int32) throws(Failure) {
        var size = socketBuffer
        try check("setsockopt", setsockopt(s, SOL_SOCKET, option, &size, socklen_t(MemoryLayout<Int32>.size)))
    }

    private static func loopback(port: in_port_t) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        a.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        return a
    }

    private static func withSockaddr(_ a: inout sockaddr_in, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// Waits until `s` is readable (a pending connection or data), or throws after the deadline.
    private static func wait(for s: Int32, what: String) throws(Failure) {
        var p = pollfd(fd: s, events: Int16(POLLIN), revents: 0)
        while true {
            let r = poll(&p, 1, timeoutMilliseconds)
            if r < 0 && errno == EINTR { continue }
            try check("poll", r)
            if r == 0 { throw .timedOut(what) }
            return
        }
    }

    private static func check(_ name: String, _ result: some BinaryInteger) throws(Failure) {
        if result < 0 { throw .call(name, errno: errno) }
    }
}
