import Foundation
import Testing
@testable import LoadGen

@Suite("SSE parsing")
struct SSETests {
    /// Comments, an event type, multi-line data, CRLF and CR line ends, multi-byte characters,
    /// a field without a space after the colon, and OpenAI's terminator.
    static let stream = ": keep-alive\n"
        + "data: {\"a\":\"caf\u{E9} \u{65E5}\u{672C} \u{1F600}\"}\n\n"
        + "event: note\r\ndata: line one\r\ndata: line two\r\n\r\n"
        + "data:no-space\r\rid: 7\nretry: 10\ndata: {\"b\":2}\n\n"
        + "data: [DONE]\n\n"

    static let expected: [SSEParser.Event] = [
        .init(data: "{\"a\":\"caf\u{E9} \u{65E5}\u{672C} \u{1F600}\"}"),
        .init(data: "line one\nline two", type: "note"),
        .init(data: "no-space"),
        .init(data: "{\"b\":2}"),
        .init(data: "[DONE]"),
    ]

    static func parse(_ chunks: [ArraySlice<UInt8>]) -> [SSEParser.Event] {
        var parser = SSEParser()
        var events: [SSEParser.Event] = []
        for c in chunks { events += parser.feed(c) }
        return events + parser.finish()
    }

    @Test("whole stream at once")
    func whole() {
        let bytes = Array(Self.stream.utf8)
        #expect(Self.parse([bytes[...]]) == Self.expected)
    }

    @Test("split at every byte boundary, including inside UTF-8 characters and between CR and LF")
    func everySplit() {
        let bytes = Array(Self.stream.utf8)
        for i in 0...bytes.count {
            #expect(Self.parse([bytes[..<i], bytes[i...]]) == Self.expected, "split at \(i)")
        }
    }

    @Test("one byte at a time, and random chunkings")
    func manySplits() {
        let bytes = Array(Self.stream.utf8)
        #expect(Self.parse(bytes.indices.map { bytes[$0...$0] }) == Self.expected)
        var rng = SeededRandom(seed: 3)
        for _ in 0..<200 {
            var chunks: [ArraySlice<UInt8>] = []
            var at = 0
            while at < bytes.count {
                let n = min(bytes.count - at, rng.int(in: 1...9))
                chunks.append(bytes[at..<(at + n)])
                at += n
            }
            #expect(Self.parse(chunks) == Self.expected)
        }
    }

    @Test("a last event without its blank line is delivered at the end")
    func unterminated() {
        var parser = SSEParser()
        #expect(parser.feed(Array("data: x\n\ndata: y".utf8)) == [.init(data: "x")])
        #expect(parser.finish() == [.init(data: "y")])
        #expect(parser.finish().isEmpty)
    }

    @Test("stream chunks fold into answer, usage and first-token time; the role-only chunk is not a token")
    func reader() throws {
        var r = StreamReader()
        let clock = ContinuousClock()
        let t0 = clock.now
        try r.take(.init(data: #"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#), at: t0)
        #expect(r.firstContent == nil)
        let t1 = t0.advanced(by: .milliseconds(5))
        try r.take(.init(data: #"{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#), at: t1)
        try r.take(.init(data: #"{"choices":[{"index":0,"text":"lo"}]}"#), at: t1.advanced(by: .milliseconds(5)))
        try r.take(.init(data: #"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#), at: t1)
        try r.take(.init(data: #"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":8}}}"#), at: t1)
        try r.take(.init(data: "[DONE]"), at: t1)
        #expect(r.answer == "Hello")
        #expect(r.firstContent == t1)
        #expect(r.contentChunks == 2)
        #expect(r.promptTokens == 12 && r.completionTokens == 2 && r.cachedTokens == 8)
        #expect(r.finishReason == "length" && r.done)
    }

    @Test("an error event fails the request")
    func errorEvent() {
        var r = StreamReader()
        #expect(throws: LoadGenError.stream("the engine failed")) {
            try r.take(.init(data: #"{"error":{"message":"the engine failed","type":"server_error"}}"#), at: ContinuousClock().now)
        }
        #expect(throws: LoadGenError.self) { try r.take(.init(data: "not json"), at: ContinuousClock().now) }
    }
}
