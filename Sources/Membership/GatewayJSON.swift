import Foundation

// The JSON shapes of etcd's gRPC gateway (protobuf's JSON mapping): 64-bit integers are
// strings, bytes are base64, fields left at their zero value are omitted.

/// An int64 that the gateway writes as a string; numbers are accepted too.
struct JSONInt64: Codable, Hashable {
    var value: Int64
    init(_ value: Int64) { self.value = value }

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self), let number = Int64(text) {
            value = number
        } else {
            value = try container.decode(Int64.self)
        }
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(String(value))
    }
}

/// Bytes as base64.
struct JSONBytes: Codable, Hashable {
    var bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    init(_ text: String) { self.bytes = Array(text.utf8) }

    init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let data = Data(base64Encoded: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not base64"))
        }
        bytes = Array(data)
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Data(bytes).base64EncodedString())
    }
}

struct ResponseHeader: Decodable {
    var revision: JSONInt64?
}

struct LeaseGrantRequest: Encodable {
    var TTL: JSONInt64
}

struct LeaseGrantResponse: Decodable {
    var ID: JSONInt64?
    var TTL: JSONInt64?
}

struct LeaseIDRequest: Encodable {
    var ID: JSONInt64
}

/// Keep-alive is a bidirectional stream in gRPC; the gateway wraps each answer in `result`.
struct LeaseKeepAliveResponse: Decodable {
    struct Result: Decodable {
        var ID: JSONInt64?
        var TTL: JSONInt64?
    }
    var result: Result?
    var error: GatewayStreamError?
}

struct PutRequest: Encodable {
    var key: JSONBytes
    var value: JSONBytes
    var lease: JSONInt64?
}

struct PutResponse: Decodable {
    var header: ResponseHeader?
}

struct RangeRequest: Encodable {
    var key: JSONBytes
    var range_end: JSONBytes?
}

struct WireKeyValue: Decodable {
    var key: JSONBytes?
    var value: JSONBytes?
    var create_revision: JSONInt64?
    var mod_revision: JSONInt64?
    var version: JSONInt64?
    var lease: JSONInt64?

    var keyValue: KeyValue {
        KeyValue(key: String(decoding: key?.bytes ?? [], as: UTF8.self), value: value?.bytes ?? [],
                 createRevision: create_revision?.value ?? 0, modRevision: mod_revision?.value ?? 0,
                 version: version?.value ?? 0, lease: lease.flatMap { $0.value == 0 ? nil : LeaseID($0.value) })
    }
}

struct RangeResponse: Decodable {
    var header: ResponseHeader?
    var kvs: [WireKeyValue]?
}

struct DeleteRangeRequest: Encodable {
    var key: JSONBytes
}

struct DeleteRangeResponse: Decodable {
    var header: ResponseHeader?
    var deleted: JSONInt64?
}

struct WatchCreateRequest: Encodable {
    struct Create: Encodable {
        var key: JSONBytes
        var range_end: JSONBytes
        var start_revision: JSONInt64
    }
    var create_request: Create
}

struct WatchStreamMessage: Decodable {
    struct Result: Decodable {
        struct Event: Decodable {
            var type: String?
            var kv: WireKeyValue?
        }
        var header: ResponseHeader?
        var created: Bool?
        var canceled: Bool?
        var compact_revision: JSONInt64?
        var cancel_reason: String?
        var events: [Event]?
    }
    var result: Result?
    var error: GatewayStreamError?
}

/// A unary error body: `{"error": "...", "message": "...", "code": 5}`.
struct GatewayError: Decodable {
    var error: String?
    var message: String?
    var code: Int?
}

/// An error inside a stream: an object in grpc-gateway v1, a string in some versions.
struct GatewayStreamError: Decodable {
    var message: String

    private struct Object: Decodable {
        var message: String?
        var grpc_code: Int?
        var http_status: String?
    }

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            message = text
        } else {
            let object = try container.decode(Object.self)
            message = object.message ?? "code \(object.grpc_code ?? -1)"
        }
    }
}
