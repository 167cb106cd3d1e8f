import Router
import Engine
import Foundation
import GRPCCore
import MemPool
import Wire

/// The gRPC face of an `InstanceNode`. Requests that make no sense (wrong role, malformed KV,
/// bad sampling) fail with a status naming the problem; nothing a peer sends can stop the
/// instance or touch another request.
final class InstanceService: Memserve_V1_Instance.SimpleServiceProtocol, @unchecked Sendable {
    /// Set once before the server starts.
    weak var node: InstanceNode?

    private func instance() throws -> InstanceNode {
        guard let node else { throw RPCError(code: .unavailable, message: "the instance is stopping") }
        return node
    }

    func info(request: Memserve_V1_InfoRequest, context: ServerContext) async throws -> Memserve_V1_InstanceInfo {
        try instance().info
    }

    func generate(request: Memserve_V1_GenerateRequest, response: RPCWriter<Memserve_V1_GenerateEvent>,
                  context: ServerContext) async throws {
        let node = try instance()
        if node.role == .decode {
            throw RPCError(code: .failedPrecondition, message: "a decode instance takes sequences by handoff, not requests")
        }
        if node.role == .prefill {
            do { _ = try PeerAddress(parsing: request.decodePeer) } catch {
                throw RPCError(code: .invalidArgument, message: "a prefill instance needs decode_peer: \(error)")
            }
        }
        let stream: AsyncThrowingStream<RequestOutput, any Error>
        do {
            stream = try node.generate(ServingRequest(promptTokens: request.promptTokens, sampling: SamplingParameters(wire: request.sampling),
                                                      traceID: request.traceID),
                                       decodePeer: request.decodePeer).1
        } catch {
            throw RPCError(engineError: error)
        }
        do {
            for try await out in stream {
                var event = Memserve_V1_GenerateEvent()
                event.output = out.wire
                try await response.write(event)
            }
        } catch let error as RPCError {
            throw error
        } catch let error as EngineError {
            throw RPCError(engineError: error)
        } catch let error as RemoteError {
            throw RPCError(code: .unavailable, message: error.description)
        }
    }

    func handoff(request: RPCAsyncSequence<Memserve_V1_HandoffMessage, any Error>, response: RPCWriter<Memserve_V1_HandoffReply>,
                 context: ServerContext) async throws {
        let node = try instance()
        guard node.role == .decode else {
            throw RPCError(code: .failedPrecondition, message: "this instance is \(node.role.rawValue), not decode")
        }
        var messages = request.makeAsyncIterator()
        guard case let .header(h)? = try await messages.next()?.part else {
            throw RPCError(code: .invalidArgument, message: "a handoff starts with a header")
        }
        let engine = node.engine, pool = engine.core.memPool
        let computed = h.tokens.count - 1
        guard h.blockBytes == pool.blockBytes else {
            throw RPCError(code: .failedPrecondition, message: "blocks of \(h.blockBytes) bytes; this instance's are \(pool.blockBytes)")
        }
        guard computed >= 1, h.promptCount >= 1, h.promptCount <= computed, h.cachedTokens >= 0,
              h.blockCount == (computed + pool.blockTokens - 1) / pool.blockTokens else {
            throw RPCError(code: .invalidArgument, message: "inconsistent handoff: \(h.tokens.count) tokens, prompt \(h.promptCount), \(h.blockCount) blocks")
        }
        let handoff = Handoff(id: engine.reserveID(), tokens: h.tokens, promptCount: Int(h.promptCount), cachedTokens: Int(h.cachedTokens),
                              sampling: SamplingParameters(wire: h.sampling), randomState: h.rngState,
                              decoderPending: [UInt8](h.decoderPending), stopHeld: h.stopPending, tokenizer: engine.model.tokenizer,
                              traceID: h.traceID)
        try await node.continueHandoff(handoff, returnPeer: h.returnPeer, accept: { have in
            var reply = Memserve_V1_HandoffReply()
            reply.accepted.haveBlocks = Int64(have)
            try await response.write(reply)
        }, fill: { reservation in
            try await RemoteTransfer.receiveChunks(into: reservation, blockBytes: pool.blockBytes) {
                try await Self.chunk(from: messages.next()) { if case let .chunk(c)? = $0.part { c } else { nil } }
            }
        }, emit: { out in
            var r = Memserve_V1_HandoffReply()
            r.output = out.wire
            try await response.write(r)
        })
    }

    func transferWithInsert(request: RPCAsyncSequence<Memserve_V1_TransferMessage, any Error>,
                            response: RPCWriter<Memserve_V1_TransferReply>, context: ServerContext) async throws {
        let node = try instance()
        var messages = request.makeAsyncIterator()
        guard case let .header(h)? = try await messages.next()?.part else {
            throw RPCError(code: .invalidArgument, message: "a transfer starts with a header")
        }
        let pool = node.engine.core.memPool, bt = pool.blockTokens
        let count = Int(h.blockCount)
        guard h.blockBytes == pool.blockBytes else {
            throw RPCError(code: .failedPrecondition, message: "blocks of \(h.blockBytes) bytes; this instance's are \(pool.blockBytes)")
        }
        guard count >= 0, count <= pool.hotBlocks, h.tokens.count <= count * bt, h.tokens.count > (count - 1) * bt else {
            throw RPCError(code: .invalidArgument, message: "\(count) blocks cannot hold \(h.tokens.count) tokens (\(bt) per block, at most \(pool.hotBlocks) blocks)")
        }
        let tokens = h.tokens[...]
        let reservation: KVReservation
        do {
            let guest = h.guest
            reservation = try await node.receiveKV(tokens: tokens, blockCount: count, waitForRoom: false, guest: guest, accept: { have in
                var accepted = Memserve_V1_TransferReply()
                accepted.accepted.haveBlocks = Int64(have)
                try await response.write(accepted)
            }, fill: { reservation in
                try await RemoteTransfer.receiveChunks(into: reservation, blockBytes: pool.blockBytes) {
                    try await Self.chunk(from: messages.next()) { if case let .chunk(c)? = $0.part { c } else { nil } }
                }
            }, commit: { e, reservation in
                e.core.memPool.release(KVTransfer.commit(reservation, tokens: tokens, in: e.core.memPool, guest: guest))
            })
        } catch let error as KVTransferError {
            throw RPCError(code: .resourceExhausted, message: error.description)
        }
        var done = Memserve_V1_TransferReply()
        done.done.movedBlocks = Int64(reservation.missing)
        try await response.write(done)
    }
}

extension InstanceService {
    func watchCache(request: Memserve_V1_WatchCacheRequest, response: RPCWriter<Memserve_V1_CacheUpdate>,
                    context: ServerContext) async throws {
        let node = try instance()
        for try await update in node.watchCache() {
            try await response.write(update.wire)
        }
    }

    func pushPrefix(request: Memserve_V1_PushPrefixRequest, context: ServerContext) async throws -> Memserve_V1_PushPrefixReply {
        let node = try instance()
        guard request.blocks >= 0, !request.destination.isEmpty else {
            throw RPCError(code: .invalidArgument, message: "a push names a destination and a non-negative block count")
        }
        let vocab = node.engine.model.transformer.configuration.vocabularySize
        if let bad = request.tokens.first(where: { $0 < 0 || Int($0) >= vocab }) {
            throw RPCError(code: .invalidArgument, message: "token \(bad) is outside the vocabulary")
        }
        do {
            let (cached, moved) = try await node.pushPrefix(tokens: request.tokens, blocks: Int(request.blocks),
                                                            to: request.destination, traceID: request.traceID)
            var reply = Memserve_V1_PushPrefixReply()
            reply.cachedBlocks = Int64(cached)
            reply.movedBlocks = Int64(moved)
            return reply
        } catch let e as RemoteError {
            throw RPCError(code: .unavailable, message: e.description)
        }
    }

    func spill(request: Memserve_V1_SpillRequest, context: ServerContext) async throws -> Memserve_V1_SpillReply {
        let node = try instance()
        if request.final {
            try await node.drained()
            return Memserve_V1_SpillReply()
        }
        guard !request.destination.isEmpty else { throw RPCError(code: .invalidArgument, message: "a spill names a destination") }
        do {
            let r = try await node.spill(hashes: request.hashes.map(PrefixHash.init(value:)), to: request.destination,
                                         traceID: request.traceID)
            var reply = Memserve_V1_SpillReply()
            reply.prefixes = Int64(r.prefixes)
            reply.stagedBlocks = Int64(r.stagedBlocks)
            reply.movedBlocks = Int64(r.movedBlocks)
            return reply
        } catch let e as RemoteError {
            throw RPCError(code: .unavailable, message: e.description)
        }
    }

    /// The KV chunk a message of a transfer carries: nil at the end of the stream; anything
    /// but a chunk after the header is the sender's error.
    static func chunk<M>(from message: M?, _ part: (M) -> Memserve_V1_KVChunk?) throws -> Memserve_V1_KVChunk? {
        guard let message else { return nil }
        guard let c = part(message) else { throw RPCError(code: .invalidArgument, message: "expected a KV chunk") }
        return c
    }
}

extension RPCError {
    /// The status a front end sees for a request the engine refused.
    init(engineError error: any Error) {
        switch error as? EngineError {
        case .shuttingDown?: self.init(code: .unavailable, message: "\(error)")
        case .kvCacheTooSmall?: self.init(code: .resourceExhausted, message: "\(error)")
        case .some: self.init(code: .invalidArgument, message: "\(error)")
        case nil: self.init(code: .internalError, message: "\(error)")
        }
    }
}
