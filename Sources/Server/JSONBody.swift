import Foundation
import Hummingbird

/// Reading JSON request bodies with limits, and writing JSON responses and SSE events.
enum JSONBody {
    /// Encodes `value` as compact JSON with sorted keys (slashes unescaped, as OpenAI sends them).
    static func encode(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        // Sorted keys: the same object always reads the same (hash order changes per process).
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return String(decoding: try encoder.encode(value), as: UTF8.self)
        } catch {
            // Our response types hold only strings and numbers; a failure here is a bug, but the
            // client still gets well-formed JSON.
            return #"{"error":{"message":"internal encoding error","type":"server_error","param":null,"code":null}}"#
        }
    }

    /// A JSON response with `status`.
    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let buffer = ByteBuffer(string: encode(value))
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.contentLength] = String(buffer.readableBytes)
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: buffer))
    }

    /// One server-sent event carrying `value` as JSON.
    static func event(_ value: some Encodable) -> ByteBuffer {
        ByteBuffer(string: "data: " + encode(value) + "\n\n")
    }

    /// The event that ends an OpenAI stream.
    static let done = ByteBuffer(string: "data: [DONE]\n\n")

    /// Reads and decodes a JSON body of at most `limit` bytes.
    ///
    /// A missing Content-Type is accepted (some clients omit it); an explicit non-JSON one is
    /// refused, since its body is then most likely form-encoded and would only fail later with
    /// a confusing message.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, limit: Int) async throws(APIError) -> T {
        if let contentType = request.headers[.contentType] {
            let media = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
            if media != "application/json" && !media.hasSuffix("+json") {
                throw .unsupportedMediaType(contentType)
            }
        }
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
            throw .bodyTooLarge(limit: limit)
        }
        var bytes: [UInt8] = []
        do {
            for try await chunk in request.body {
                if bytes.count + chunk.readableBytes > limit { throw APIError.bodyTooLarge(limit: limit) }
                bytes.append(contentsOf: chunk.readableBytesView)
            }
        } catch let error as APIError {
            throw error
        } catch {
            throw .malformedJSON("the request body could not be read (\(error))")
        }
        if bytes.isEmpty { throw .malformedJSON("the body is empty") }
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw APIError(error)
        } catch let error as APIError {
            throw error
        } catch {
            throw .malformedJSON("\(error)")
        }
    }
}
