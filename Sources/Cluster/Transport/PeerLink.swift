import Router
import Engine
import Foundation
import GRPCCore
import MemPool
import Synchronization
import Wire

/// An instance's way to another instance: the paper's distributed MemPool API plus the handoff
/// of a sequence, whatever carries the bytes. `LocalLink` reaches an instance in this process
/// (KV moves by memory copy); `GRPCLink` one in another process (KV streams in chunks over
/// HTTP/2). `InstanceNode` runs prefill/decode disaggregation through this protocol only.
public protocol PeerLink: Sendable {
    /// Hands a sequence to the peer (a decode instance) and relays its outputs to `sink` until
    /// the request ends there.
    ///
    /// - Parameters:
    ///   - blocks: addresses of the sequence's KV blocks, held by the caller until `sent`.
    ///   - returnPeer: where the peer returns the finished sequence's KV (PD-Caching-3), or "".
    ///   - accepted: called once the peer has room, with the leading blocks it already caches
    ///     (those are not sent).
    ///   - sent: called once the blocks' bytes are no longer needed.
    func handoff(_ handoff: Handoff, blocks: [UInt], blockBytes: Int, returnPeer: String, sink: EngineService.RequestSink,
                 accepted: @escaping @Sendable (Int) -> Void, sent: @escaping @Sendable () -> Void) async throws

    /// `transfer_with_insert`: the peer keeps the leading blocks it caches for `tokens`,
    /// receives the rest of `blocks` (held by the caller) and indexes them. Returns blocks moved.
    /// With `guest` (a spill into the peer tier) the peer keeps them as a peer's blocks, and
    /// refuses (`KVTransferError.noRoom`) rather than evict its own.
    func transferWithInsert(tokens: [Int32], blocks: [UInt], blockBytes: Int, guest: Bool) async throws -> Int
}

extension PeerLink {
    /// `transfer_with_insert` of blocks the peer will own.
    public func transferWithInsert(tokens: [Int32], blocks: [UInt], blockBytes: Int) async throws -> Int {
        try await transferWithInsert(tokens: tokens, blocks: blocks, blockBytes: blockBytes, guest: false)
    }
}

/// A peer instance in this process: the receiving side runs directly, copying from the
/// sender's blocks into the blocks it reserved.
public struct LocalLink: PeerLink {
    /// Held weakly: instances of one process point at each other.
    private let box: WeakNode

    init(_ node: InstanceNode) { box = WeakNode(node) }

    private func peer() throws -> InstanceNode {
        guard let node = box.node else { throw RemoteError.noPeer("the instance in this process has stopped") }
        return node
    }

    public func handoff(_ handoff: Handoff, blocks: [UInt], blockBytes: Int, returnPeer: String, sink: EngineService.RequestSink,
                        accepted: @escaping @Sendable (Int) -> Void, sent: @escaping @Sendable () -> Void) async throws {
        let decode = try peer()
        var h = handoff
        h.id = decode.engine.reserveID()
        h.blocks = []
        let id = handoff.id
        try await decode.continueHandoff(h, returnPeer: returnPeer, accept: { accepted($0) }, fill: { r in
            KVTransfer.copy(blocks[r.have...], into: r, blockBytes: blockBytes)
            sent()
        }, emit: { out in
            var o = out
            o.id = id
            sink.yield(o)
        })
        sink.finish()
    }

    public func transferWithInsert(tokens: [Int32], blocks: [UInt], blockBytes: Int, guest: Bool) async throws -> Int {
        let r = try await peer().receiveKV(tokens: tokens[...], blockCount: blocks.count, waitForRoom: false, guest: guest,
                                           accept: { _ in }, fill: { r in
            try KVTransfer.check(blocks[...], have: r.have)
            KVTransfer.copy(blocks[r.have...], into: r, blockBytes: blockBytes)
        }, commit: { e, r in
            e.core.memPool.release(KVTransfer.commit(r, tokens: tokens[...], in: e.core.memPool, guest: guest))
        })
        return r.missing
    }
}

final class WeakNode: @unchecked Sendable {
    weak var node: InstanceNode?
    init(_ node: InstanceNode) { self.node = node }
}

/// A peer instance in another process, over gRPC (`Handoff` and `TransferWithInsert` RPCs).
public struct GRPCLink: PeerLink {
    let client: PeerClients.Client
    let peer: String

    public func handoff(_ handoff: Handoff, blocks: [UInt], blockBytes: Int, returnPeer: String, sink: EngineService.RequestSink,
                        accepted: @escaping @Sendable (Int) -> Void, sent: @escaping @Sendable () -> Void) async throws {
        let header = handoff.wireHeader(blockBytes: blockBytes, returnPeer: returnPeer)
        let have = Promise<Int>()
        let id = handoff.id
        let request = StreamingClientRequest<Memserve_V1_HandoffMessage> { writer in
            var m = Memserve_V1_HandoffMessage()
            m.header = header
            try await writer.write(m)
            let skip = try await have.value()
            guard (0...blocks.count).contains(skip) else {
                throw RemoteError.protocolViolation("decode has \(skip) of \(blocks.count) blocks")
            }
            accepted(skip)
            try await RemoteTransfer.sendChunks(addresses: blocks[skip...], firstBlock: skip, blockBytes: blockBytes) { chunk in
                var m = Memserve_V1_HandoffMessage()
                m.chunk = chunk
                try await writer.write(m)
            }
            // Every byte is serialized into messages: the blocks can go back to the cache.
            sent()
        }
        try await client.handoff(request: request, options: PeerClients.callOptions) { response in
            defer { have.fail(RemoteError.protocolViolation("the handoff ended before decode accepted it")) }
            var finished = false
            for try await reply in response.messages {
                switch reply.part {
                case let .accepted(a)?: have.succeed(Int(a.haveBlocks))
                case let .output(o)?:
                    let out = RequestOutput(wire: o, id: id)
                    sink.yield(out)
                    if out.finishReason != nil { finished = true }
                case nil: break
                }
            }
            guard finished else { throw RemoteError.protocolViolation("decode ended the stream before the request finished") }
        }
        sink.finish()
    }

    public func transferWithInsert(tokens: [Int32], blocks: [UInt], blockBytes: Int, guest: Bool) async throws -> Int {
        try await RemoteTransfer.transferWithInsert(to: client, tokens: tokens, addresses: blocks, blockBytes: blockBytes, guest: guest)
    }
}
