import Dispatch
import Engine
import GRPCCore
import MemPool
import Router
import Synchronization

// What a router needs of an instance (`RoutedInstance`): its description with the measured
// costs, requests, its prompt tree and load as a stream, and the scheduler's transfer orders.
// The gRPC service serves the same calls to routers in other processes.

extension InstanceNode: RoutedInstance {
    public func describe() async throws -> InstanceDescription { description }

    /// This instance as `Info` reports it.
    var description: InstanceDescription {
        let pool = engine.core.memPool
        return InstanceDescription(name: name, role: role, mode: mode, model: engine.model.name,
                                   blockTokens: pool.blockTokens, blockBytes: pool.blockBytes,
                                   tokenCapacity: engine.tokenCapacity, maxContext: engine.model.transformer.maxContext,
                                   costs: costs.withLock { $0 }, stats: engine.stats)
    }

    public func generate(_ request: ServingRequest, decodePeer: String?) -> AsyncThrowingStream<RequestOutput, any Error> {
        do {
            return try generate(request, decodePeer: decodePeer).1
        } catch {
            return AsyncThrowingStream { $0.finish(throwing: error) }
        }
    }

    /// The prompt tree's snapshot, taken on the engine thread together with the subscription
    /// to its events, so the events that follow are exactly the changes after it. Events are
    /// numbered here; if the consumer falls so far behind that the buffer overflows, the
    /// dropped events leave a gap in the numbers and the consumer resubscribes.
    public func watchCache() -> AsyncThrowingStream<CacheUpdate, any Error> {
        let (stream, continuation) = AsyncThrowingStream<CacheUpdate, any Error>.makeStream(bufferingPolicy: .bufferingOldest(1 << 16))
        let engine = engine, node = self
        watchers.add(1, ordering: .relaxed)
        let subscription = Mutex<(MemPoolSubscription?, ended: Bool)>((nil, false))
        engine.enqueue({ e in
            let pool = e.core.memPool
            if subscription.withLock({ $0.ended }) { return true }
            continuation.yield(.snapshot(seq: 0, entries: pool.cachedBlockEntries()))
            let counter = EventCounter()
            let sub = pool.subscribe { event in
                counter.seq += 1
                continuation.yield(.event(seq: counter.seq, event))
            }
            subscription.withLock { $0.0 = sub }
            return true
        }, dropped: { continuation.finish(throwing: EngineError.shuttingDown) })
        let loads = Task {
            for await stats in engine.statsUpdates() { continuation.yield(.load(stats)) }
            continuation.finish()
        }
        continuation.onTermination = { _ in
            node.watchers.subtract(1, ordering: .relaxed)
            loads.cancel()
            let sub = subscription.withLock { s -> MemPoolSubscription? in
                s.ended = true
                return s.0
            }
            if let sub { engine.enqueue { $0.core.memPool.unsubscribe(sub); return true } }
        }
        return stream
    }

    /// Sends the hot KV cached here for the leading `blocks` blocks of `tokens` to
    /// `destination`, which keeps what it has and indexes the rest (`transfer_with_insert`).
    /// The blocks are locked while they move.
    public func pushPrefix(tokens: [Int32], blocks: Int, to destination: String, traceID: String) async throws -> (cached: Int, moved: Int) {
        let engine = engine
        let bt = engine.core.memPool.blockTokens
        let wanted = Array(tokens.prefix(max(0, min(blocks, tokens.count / bt)) * bt))
        // Blocks of either tier go, as long as they have an address (a cold tier in a file has
        // none): a prefix the peer tier keeps here is often cold.
        let (held, addresses): ([BlockID], [UInt]) = try await engine.perform { e in
            let pool = e.core.memPool
            var held: [BlockID] = [], addresses: [UInt] = []
            for b in pool.match(wanted).blocks {
                guard let a = pool.address(of: b) else { break }
                held.append(b)
                addresses.append(UInt(bitPattern: a))
            }
            pool.retain(held)
            return (held, addresses)
        }
        defer { engine.enqueue { $0.core.memPool.release(held); return true } }
        guard !held.isEmpty else { return (0, 0) }
        let pool = engine.core.memPool
        let moved = try await link(to: destination).transferWithInsert(tokens: Array(wanted.prefix(held.count * bt)),
                                                                      blocks: addresses, blockBytes: pool.blockBytes)
        counters.value.withLock { $0.blocksPushed += moved }
        if !traceID.isEmpty { logger.debug("pushed \(moved) of \(held.count) blocks to \(destination) for \(traceID)") }
        return (held.count, moved)
    }

    /// Carries out the scheduler's spill order (the peer tier): plans the staged blocks among
    /// `hashes` with the rest of their path (on the engine thread, which holds them meanwhile),
    /// then sends each prefix to `destination` as its guest blocks. A destination without room
    /// ends the order; whatever was not sent stays staged until the ring reuses its slots.
    public func spill(hashes: [PrefixHash], to destination: String, traceID: String) async throws -> SpillResult {
        let engine = engine
        let link = try link(to: destination)
        let draining = traceID == SpillResult.drainTrace
        let plans: [MemPool.SpillPlan] = try await engine.perform { $0.core.memPool.beginSpill(hashes, holdCached: draining) }
        var sent = [Bool](repeating: false, count: plans.count)
        defer {
            let outcome = Array(zip(plans, sent))
            engine.enqueue { e in
                for (plan, ok) in outcome { e.core.memPool.endSpill(plan, sent: ok) }
                return true
            }
        }
        var result = SpillResult()
        let blockBytes = engine.core.memPool.blockBytes
        for (k, plan) in plans.enumerated() {
            do {
                result.movedBlocks += try await link.transferWithInsert(tokens: plan.tokens, blocks: plan.addresses,
                                                                        blockBytes: blockBytes, guest: true)
            } catch KVTransferError.noRoom {
                break
            } catch let e as RPCError where e.code == .resourceExhausted {
                break
            } catch where plan.requiredBlocks > 0 {
                // The peer lacks the part of the path still cached here: this prefix goes
                // when that part is evicted in turn.
                continue
            }
            sent[k] = true
            result.prefixes += 1
            result.stagedBlocks += plan.stagedBlocks
        }
        let r = result
        counters.value.withLock {
            $0.spills += 1
            $0.prefixesSpilled += r.prefixes
            $0.blocksSpilled += r.movedBlocks
        }
        if !traceID.isEmpty || r.prefixes > 0 {
            logger.debug("spilled \(r.prefixes) prefixes (\(r.movedBlocks) blocks moved) to \(destination)")
        }
        return r
    }

    public func drained() async throws { handedOver.succeed(()) }

    /// Leaves gracefully (before `shutdown`): reports itself draining, so routers send it no new
    /// requests and order its only-copy prefixes to peers with room, and waits until a router
    /// says it is done, at most `timeout`. Returns at once when no router follows it.
    public func drain(timeout: Duration) async {
        guard watchers.load(ordering: .relaxed) > 0 else { return }
        engine.markDraining()
        logger.info("draining: handing cached prefixes only this instance holds to peers")
        let done = handedOver
        let timer = Task {
            try await Task.sleep(for: timeout)
            done.fail(RemoteError.noPeer("no router finished the handover within \(timeout)"))
        }
        do {
            try await done.value()
        } catch {
            logger.warning("\(error)")
        }
        timer.cancel()
        let t = transferStats
        logger.info("drained: \(t.prefixesSpilled) prefixes spilled in all, \(t.blocksSpilled) blocks moved")
    }

    /// Measures what the router's cost model needs: prefill time at two prompt lengths (on
    /// the engine, with tokens no one else sends, deleted from the cache after) and the speed
    /// of moving KV: to itself over gRPC when listening, else a memory copy between blocks.
    /// Call it once the instance runs, before routers learn of it. `prefill`, when given, is a
    /// sibling's measurement (same model, threads and host) taken instead of measuring again:
    /// on a busy machine a second measurement adds only noise, and the router would read
    /// that noise as one sibling being slower than another.
    public func measureCosts(prefill given: [CostInputs.PrefillPoint]? = nil) async {
        let maxLen = min(engine.model.transformer.maxContext, engine.tokenCapacity) - 2
        let lengths = [64, 512].map { min($0, maxLen) }.filter { $0 > 0 }
        var points: [CostInputs.PrefillPoint] = given ?? []
        for n in given == nil ? Set(lengths).sorted() : [] {
            let tokens = Self.probeTokens(count: n, vocabulary: engine.model.transformer.configuration.vocabularySize)
            var sampling = SamplingParameters.greedy
            sampling.maxTokens = 1
            sampling.ignoreEOS = true
            // The best of three: the machine may be busy with others, and the least disturbed
            // run is the closest to what the instance can do.
            var best = Double.infinity
            for _ in 0..<3 {
                let start = DispatchTime.now().uptimeNanoseconds
                do {
                    let stream = try engine.submit(ServingRequest(promptTokens: tokens, sampling: sampling)).1
                    for try await _ in stream {}
                } catch {
                    logger.warning("measuring prefill speed failed: \(error)")
                    return
                }
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                _ = try? await engine.perform { e -> Bool? in _ = e.core.memPool.delete(tokens: tokens); return true }
            }
            points.append(.init(tokens: n, seconds: best))
        }
        let (rate, latency) = await measureTransfer()
        costs.withLock { $0 = CostInputs(prefill: points, transferBytesPerSecond: rate, transferLatencySeconds: latency) }
    }

    /// Bytes per second and seconds of fixed cost of one KV transfer from here.
    private func measureTransfer() async -> (Double, Double) {
        let pool = engine.core.memPool
        let count = max(1, min(8, pool.hotBlocks / 8))
        guard let blocks = try? await engine.perform({ e in e.core.memPool.allocate(count) }) else { return (0, 0) }
        defer { engine.enqueue { $0.core.memPool.release(blocks); return true } }
        let addresses = blocks.map { UInt(bitPattern: pool.blockPointer($0)) }
        let bytes = Double(count * pool.blockBytes)
        if listens, let link = try? link(to: name) {
            // One tiny transfer for the fixed cost, then the blocks for the rate.
            var samples: [(Double, Double)] = []
            for n in [1, count] {
                let tokens = Self.probeTokens(count: n * pool.blockTokens, vocabulary: engine.model.transformer.configuration.vocabularySize)
                let start = DispatchTime.now().uptimeNanoseconds
                guard (try? await link.transferWithInsert(tokens: tokens, blocks: Array(addresses.prefix(n)), blockBytes: pool.blockBytes)) != nil
                else { return (0, 0) }
                samples.append((Double(n * pool.blockBytes), Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9))
                _ = try? await engine.perform { e -> Bool? in _ = e.core.memPool.delete(tokens: tokens); return true }
            }
            let (b1, t1) = samples[0], (b2, t2) = samples[1]
            let rate = t2 > t1 && b2 > b1 ? (b2 - b1) / (t2 - t1) : b2 / max(t2, 1e-9)
            return (rate, max(0, t1 - b1 / rate))
        }
        let start = DispatchTime.now().uptimeNanoseconds
        for (i, a) in addresses.enumerated() {
            let b = addresses[(i + 1) % addresses.count]
            UnsafeMutableRawPointer(bitPattern: b)!.copyMemory(from: UnsafeRawPointer(bitPattern: a)!, byteCount: pool.blockBytes)
        }
        return (bytes / max(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, 1e-9), 0)
    }

    /// Tokens that no client sends (a fixed pseudo-random walk over the vocabulary).
    static func probeTokens(count: Int, vocabulary: Int) -> [Int32] {
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        return (0..<count).map { _ in
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int32(truncatingIfNeeded: (x >> 33) % UInt64(max(1, vocabulary)))
        }
    }
}

/// Event numbers of one watch (engine thread only).
private final class EventCounter {
    var seq: UInt64 = 0
}
