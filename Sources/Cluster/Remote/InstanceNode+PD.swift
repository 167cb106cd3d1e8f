import Engine
import Foundation
import GRPCCore
import MemPool
import Synchronization
import Wire

// Prefill/decode disaggregation between processes: the Handoff RPC (prefill -> decode) and
// PD-Caching-3's return of a finished sequence's KV (decode -> prefill).

extension InstanceNode {
    // MARK: - Prefill side

    /// On the prefill engine thread: a sequence has its first token. A task sends it and its KV
    /// to the request's decode instance and relays the outputs; the blocks stay held until the
    /// KV has left (or the transfer failed), then go to this instance's cache.
    func startHandoff(_ handoff: Handoff, _ sink: EngineService.RequestSink) {
        let engine = engine
        guard let peer = routes.withLock({ $0[handoff.id] }) else {
            engine.core.releaseHandoff(handoff.id)
            sink.fail(RemoteError.noPeer("no decode instance for request \(handoff.id)"))
            return
        }
        let pool = engine.core.memPool
        let addresses = handoff.blocks.map { UInt(bitPattern: pool.blockPointer(BlockID(rawValue: $0))) }
        let header = handoff.wireHeader(blockBytes: pool.blockBytes, returnPeer: mode == .caching3 ? address : "")
        let id = handoff.id
        let task = Task {
            defer { _ = self.sending.withLock { $0.removeValue(forKey: id) } }
            let released = Atomic<Bool>(false)
            let release: @Sendable () -> Void = {
                if !released.exchange(true, ordering: .relaxed) {
                    engine.enqueue { $0.core.releaseHandoff(id); return true }
                }
            }
            defer { release() }
            do {
                try await self.sendHandoff(header, addresses: addresses, to: peer, sink: sink, id: id, sent: release)
            } catch {
                let reason = (error as? RPCError)?.message ?? "\(error)"
                if !sink.isCancelled { self.logger.warning("handoff of request \(id) to \(peer) failed: \(reason)") }
                sink.fail(RemoteError.peerFailed(peer: peer.description, reason: reason))
            }
        }
        sending.withLock { $0[id] = task }
        if sink.isCancelled { task.cancel() }
    }

    private func sendHandoff(_ header: Memserve_V1_HandoffHeader, addresses: [UInt], to peer: PeerAddress,
                             sink: EngineService.RequestSink, id: RequestID, sent: @escaping @Sendable () -> Void) async throws {
        let client = try clients.client(for: peer)
        let accepted = Promise<Int>()
        let blockBytes = Int(header.blockBytes)
        let request = StreamingClientRequest<Memserve_V1_HandoffMessage> { writer in
            var m = Memserve_V1_HandoffMessage()
            m.header = header
            try await writer.write(m)
            let have = try await accepted.value()
            guard (0...addresses.count).contains(have) else {
                throw RemoteError.protocolViolation("decode has \(have) of \(addresses.count) blocks")
            }
            self.counters.value.withLock {
                $0.handoffs += 1
                $0.blocksSent += addresses.count - have
                $0.blocksSkipped += have
            }
            try await RemoteTransfer.sendChunks(addresses: addresses[have...], firstBlock: have, blockBytes: blockBytes) { chunk in
                var m = Memserve_V1_HandoffMessage()
                m.chunk = chunk
                try await writer.write(m)
            }
            // Every byte is copied into messages: the blocks can go back to the cache.
            sent()
        }
        try await client.handoff(request: request, options: PeerClients.callOptions) { response in
            defer { accepted.fail(RemoteError.protocolViolation("the handoff ended before decode accepted it")) }
            var finished = false
            for try await reply in response.messages {
                switch reply.part {
                case let .accepted(a)?: accepted.succeed(Int(a.haveBlocks))
                case let .output(o)?:
                    let out = RequestOutput(wire: o, id: id)
                    sink.yield(out)
                    if out.finishReason != nil { finished = true }
                case nil: break
                }
            }
            guard finished else { throw RemoteError.protocolViolation("decode ended the stream before the request finished") }
            sink.finish()
        }
    }

    // MARK: - Decode side

    /// A sequence arriving from a prefill instance: reserve blocks (waiting while there is no
    /// room: back-pressure), tell the sender which blocks to skip, receive the rest, then decode
    /// and stream the outputs back.
    func receiveHandoff(_ h: Memserve_V1_HandoffHeader, messages: inout RPCAsyncSequence<Memserve_V1_HandoffMessage, any Error>.AsyncIterator,
                        response: RPCWriter<Memserve_V1_HandoffReply>) async throws {
        let engine = engine, pool = engine.core.memPool
        let tokens = h.tokens, computed = tokens.count - 1
        let blockCount = Int(h.blockCount)
        guard h.blockBytes == pool.blockBytes else {
            throw RPCError(code: .failedPrecondition, message: "blocks of \(h.blockBytes) bytes; this instance's are \(pool.blockBytes)")
        }
        guard computed >= 1, h.promptCount >= 1, h.promptCount <= computed, h.cachedTokens >= 0,
              blockCount == (computed + pool.blockTokens - 1) / pool.blockTokens else {
            throw RPCError(code: .invalidArgument, message: "inconsistent handoff: \(tokens.count) tokens, prompt \(h.promptCount), \(blockCount) blocks")
        }
        let sampling = SamplingParameters(wire: h.sampling)
        let id = engine.reserveID()
        let handoff = Handoff(id: id, tokens: tokens, promptCount: Int(h.promptCount), cachedTokens: Int(h.cachedTokens),
                              sampling: sampling, randomState: h.rngState, decoderPending: [UInt8](h.decoderPending),
                              stopHeld: h.stopPending, tokenizer: engine.model.tokenizer)
        do { try engine.core.validate(GenerationRequest(id: id, promptTokens: tokens, sampling: sampling)) } catch {
            throw RPCError(engineError: error)
        }
        let insert: ArraySlice<Int32>? = mode.decodeCaches ? tokens[0..<computed] : nil
        let (sink, stream) = engine.makeSink(for: id)
        if mode == .caching3, let back = try? PeerAddress(parsing: h.returnPeer) {
            returnPeers.withLock { $0[id] = back }
        }
        defer { _ = returnPeers.withLock { $0.removeValue(forKey: id) } }
        let reservation = try await receiveKV(tokens: insert, blockCount: blockCount, waiting: { [counters] in
            counters.value.withLock { $0.deferredHandoffs += 1 }
        }, accept: { have in
            var reply = Memserve_V1_HandoffReply()
            reply.accepted.haveBlocks = Int64(have)
            try await response.write(reply)
        }, next: {
            guard let m = try await messages.next() else { return nil }
            guard case let .chunk(c)? = m.part else { throw RPCError(code: .invalidArgument, message: "expected a KV chunk") }
            return c
        }, commit: { e, reservation in
            let table = KVTransfer.commit(reservation, tokens: insert, in: e.core.memPool)
            e.core.adopt(handoff, blocks: table.map(\.rawValue))
            e.register(sink, for: id)
        })
        counters.value.withLock {
            $0.handoffs += 1
            $0.blocksSent += reservation.missing
            $0.blocksSkipped += reservation.have
        }
        for try await out in stream {
            if out.finishReason != nil, let back = returning.withLock({ $0[id] }) {
                // The next turn should find this one's KV at prefill: answer after it is there.
                try? await back.value()
            }
            var r = Memserve_V1_HandoffReply()
            r.output = out.wire
            try await response.write(r)
        }
    }

    // MARK: - Receiving KV

    /// The receiving side of every transfer: reserves room on the engine thread (waiting while
    /// there is none: back-pressure; `waiting` is called once if so), tells the sender how many
    /// leading blocks it already has (`accept`), receives the rest (`next`), then runs `commit`
    /// on the engine thread. Unless `commit` ran, the reservation is dropped whatever failed.
    func receiveKV(tokens: ArraySlice<Int32>?, blockCount: Int, waiting: @escaping @Sendable () -> Void = {},
                   accept: (Int) async throws -> Void, next: () async throws -> Memserve_V1_KVChunk?,
                   commit: @escaping @Sendable (EngineService, KVReservation) -> Void) async throws -> KVReservation {
        let engine = engine, blockBytes = engine.core.memPool.blockBytes
        let waited = Counters()
        let reservation = try await engine.perform { e in
            let r = KVTransfer.reserve(tokens: tokens, blockCount: blockCount, in: e.core.memPool)
            if r == nil && waited.first() { waiting() }
            return r
        }
        var committed = false
        defer {
            if !committed { engine.enqueue { e in KVTransfer.cancel(reservation, in: e.core.memPool); return true } }
        }
        try await accept(reservation.have)
        try await RemoteTransfer.receiveChunks(into: reservation, blockBytes: blockBytes, next: next)
        // If this throws, the body did not run and the deferred cancel drops the reservation.
        _ = try await engine.perform { e -> Bool? in
            commit(e, reservation)
            return true
        }
        committed = true
        return reservation
    }

    /// On the decode engine thread (PD-Caching-3): finished sequences with their blocks retained.
    /// Each goes back to the prefill instance that sent it; the blocks are released after.
    func returnKV(_ done: [FinishedSequence]) {
        let pool = engine.core.memPool, bt = pool.blockTokens, engine = engine
        for f in done {
            let ids = f.blocks.map { BlockID(rawValue: $0) }
            let whole = min(f.tokens.count / bt, f.blocks.count)
            guard let peer = returnPeers.withLock({ $0.removeValue(forKey: f.id) }), whole > 0 else {
                pool.release(ids)
                continue
            }
            let addresses = ids[0..<whole].map { UInt(bitPattern: pool.blockPointer($0)) }
            let tokens = Array(f.tokens[0..<whole * bt])
            let promise = Promise<Void>()
            returning.withLock { $0[f.id] = promise }
            let blockBytes = pool.blockBytes, fid = f.id
            Task {
                do {
                    let client = try self.clients.client(for: peer)
                    let moved = try await RemoteTransfer.transferWithInsert(to: client, tokens: tokens, addresses: addresses, blockBytes: blockBytes)
                    self.counters.value.withLock { $0.blocksReturned += moved }
                } catch {
                    self.logger.warning("returning the KV of request \(fid) to \(peer) failed: \(error)")
                }
                engine.enqueue { $0.core.memPool.release(ids); return true }
                _ = self.returning.withLock { $0.removeValue(forKey: fid) }
                promise.succeed(())
            }
        }
    }
}
