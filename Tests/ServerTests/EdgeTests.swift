import Foundation
import Testing
@testable import Server

/// The HTTP edge's own rules over real sockets.
@Suite("HTTP edge: load limits, API keys, oversized bodies")
struct EdgeTests {
    @Test("a body over the limit gets 413 and the connection is closed at once, even when the client sends it all first")
    func oversizedBodyCloses() async throws {
        let harness = try Harness.make(maxBodyBytes: 4096)
        try await harness.withLiveServer { port in
            for declared in [true, false] {
                let connection = try RawConnection(port: port)
                let json = #"{"prompt":"\#(String(repeating: "x", count: 200_000))"}"#
                let start = Date()
                let answer = try await onThread { () -> String in
                    if declared {
                        // Keep-alive, whole body written before reading, as the user's client did.
                        connection.sendPOST("/v1/completions", json: json, keepAlive: true)
                    } else {
                        // Chunked: the size is learned only while reading.
                        var request = Array("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
                        for chunk in stride(from: 0, to: json.utf8.count, by: 8192) {
                            let part = Array(json.utf8)[chunk..<min(chunk + 8192, json.utf8.count)]
                            request += Array((String(part.count, radix: 16) + "\r\n").utf8) + part + Array("\r\n".utf8)
                        }
                        request += Array("0\r\n\r\n".utf8)
                        connection.send(request)
                    }
                    return connection.readToEnd()
                }
                connection.close()
                let elapsed = Date().timeIntervalSince(start)
                #expect(answer.hasPrefix("HTTP/1.1 413"), "\(answer.prefix(200))")
                #expect(answer.lowercased().contains("connection: close"), "\(answer.prefix(400))")
                #expect(answer.contains(#""code":"request_too_large""#))
                #expect(elapsed < 4, "the connection stayed open \(elapsed) s after the 413")
            }
            // The server still serves.
            let next = try RawConnection(port: port)
            next.sendPOST("/v1/completions", json: #"{"prompt":"Hi","max_tokens":2}"#)
            let ok = try await onThread { next.readToEnd() }
            next.close()
            #expect(ok.hasPrefix("HTTP/1.1 200"))
        }
    }
}
