import Router
import Engine
import Foundation
import GRPCCore
import MemPool
import Synchronization
import Wire

// Prefill/decode disaggregation through `PeerLink`s: the handoff (prefill -> decode), the
// receiving side of every transfer, and PD-Caching-3's return of a finished sequence's KV
// (decode -> prefill). The same code runs in one process and across processes.

extension InstanceNode {
    // MARK: - Prefill side

    /// On the prefill engine thread: a sequence has its first token. A task hands it and its KV
    /// to the request's decode instance and relays the outputs; the blocks stay held until the
    /// KV has left (or the handoff failed), then go to this instance's cache.
    func startHandoff(_ handoff: Handoff, _ sink: EngineService.RequestSink) {
        let engine = engine, id = handoff.id
        let link: any PeerLink
        do {
            guard let peer = handoff.handoffTo else { throw RemoteError.noPeer("no decode instance named for request \(id)") }
            link = try self.link(to: peer)
        } catch {
            engine.core.releaseHandoff(id)
            sink.fail(error)
            return
        }
        let peer = handoff.handoffTo ?? ""
        let pool = engine.core.memPool
        let addresses = handoff.blocks.map { UInt(bitPattern: pool.blockPointer(BlockID(rawValue: $0))) }
        let returnPeer = mode == .caching3 ? name : "", blockBytes = pool.blockBytes
        let body: @Sendable () async -> Void = {
            defer { _ = self.sending.withLock { $0.removeValue(forKey: id) } }
            let released = Atomic<Bool>(false)
            let release: @Sendable () -> Void = {
                if !released.exchange(true, ordering: .relaxed) {
                    engine.enqueue { $0.core.releaseHandoff(id); return true }
                }
            }
            defer { release() }
            do {
                try await link.handoff(handoff, blocks: addresses, blockBytes: blockBytes, returnPeer: returnPeer, sink: sink,
                                       accepted: { have in
                                           self.counters.value.withLock {
                                               $0.handoffs += 1
                                               $0.blocksSent += addresses.count - have
                                               $0.blocksSkipped += have
                                           }
                                       }, sent: release)
            } catch {
                let reason = RemoteError.reason(error)
                if sink.isCancelled, let address = try? PeerAddress(parsing: peer) {
                    self.clients.noteCancelled(address)
                }
                if !sink.isCancelled {
                    self.logger.warning("handoff of request \(handoff.traceID.isEmpty ? "\(id)" : handoff.traceID) to \(peer) failed: \(reason)")
                }
                sink.fail(RemoteError.peerFailed(peer: peer, reason: reason))
            }
        }
        // Created under the lock that `abort` takes: an abort that comes while the handoff starts
        // finds the task, however soon the task runs.
        let task = sending.withLock { sending in
            let task = Task(operation: body)
            sending[id] = task
            return task
        }
        if sink.isCancelled { task.cancel() }
    }

    // MARK: - Decode side

    /// A sequence arriving from a prefill instance (under an id of this instance): reserve
    /// blocks (waiting while there is no room: back-pressure, the sender keeps its blocks),
    /// report the blocks already cached (`accept`), get the rest (`fill`), then decode and pass
    /// every output to `emit` until the request ends. In PD-Caching-3 the finishing output waits
    /// until the KV is back at `returnPeer`, so the next turn finds it there.
    func continueHandoff(_ handoff: Handoff, returnPeer: String, accept: (Int) async throws -> Void,
                         fill: (KVReservation) async throws -> Void, emit: (RequestOutput) async throws -> Void) async throws {
        let engine = engine, id = handoff.id, computed = handoff.computedTokens
        do {
            try engine.core.validate(GenerationRequest(id: id, promptTokens: handoff.tokens, sampling: handoff.sampling))
        } catch {
            throw RPCError(engineError: error)
        }
        let insert: ArraySlice<Int32>? = mode.decodeCaches ? handoff.tokens[0..<computed] : nil
        let (sink, stream) = engine.makeSink(for: id)
        if mode == .caching3 && !returnPeer.isEmpty { returnPeers.withLock { $0[id] = returnPeer } }
        defer { _ = returnPeers.withLock { $0.removeValue(forKey: id) } }
        let blockCount = engine.model.transformer.kvLayout.blocks(forTokens: computed)
        let reservation = try await receiveKV(tokens: insert, blockCount: blockCount, waiting: { [counters] in
            counters.value.withLock { $0.deferredHandoffs += 1 }
        }, accept: accept, fill: fill, commit: { e, reservation in
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
                try? await back.value()
            }
            try await emit(out)
        }
    }

    // MARK: - Receiving KV

    /// The receiving side of every transfer: reserves room on the engine thread (waiting while
    /// there is none: back-pressure; `waiting` is called once if so), tells the sender how many
    /// leading blocks it already has (`accept`), gets the rest into the reservation (`fill`),
    /// then runs `commit` on the engine thread. Unless `commit` ran, the reservation is dropped,
    /// whatever failed. Without `waitForRoom` (cache inserts) a full pool refuses at once
    /// (`KVTransferError.noRoom`) instead of back-pressuring the sender.
    func receiveKV(tokens: ArraySlice<Int32>?, blockCount: Int, waitForRoom: Bool = true, guest: Bool = false,
                   waiting: @escaping @Sendable () -> Void = {},
                   accept: (Int) async throws -> Void, fill: (KVReservation) async throws -> Void,
                   commit: @escaping @Sendable (EngineService, KVReservation) -> Void) async throws -> KVReservation {
        let engine = engine
        let waited = Counters()
        let reserved: KVReservation? = try await engine.perform { e -> KVReservation?? in
            let r = KVTransfer.reserve(tokens: tokens, blockCount: blockCount, in: e.core.memPool, guest: guest)
            if r == nil && !waitForRoom { return .some(nil) }
            if r == nil && waited.first() { waiting() }
            return r.map { .some($0) }
        }
        guard let reservation = reserved else { throw KVTransferError.noRoom(blocks: blockCount) }
        var committed = false
        defer {
            if !committed { engine.enqueue { e in KVTransfer.cancel(reservation, in: e.core.memPool); return true } }
        }
        try await accept(reservation.have)
        try await fill(reservation)
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
                    let moved = try await self.link(to: peer).transferWithInsert(tokens: tokens, blocks: addresses, blockBytes: blockBytes)
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
