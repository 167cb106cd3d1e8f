import Foundation
import MemPool
import Metrics
import Scheduler
import Serving

// One request through the router: route (entry instance, and a decode instance for PD),
// carry out the scheduler's transfer order if it gave one, then relay the outputs; retry on
// another instance if the chosen one fails before the first token.

extension ClusterRouter {
    /// Where one attempt of a request goes.
    struct Plan {
        var entry: InstanceID
        var entryName: String
        var instance: any RoutedInstance
        var decodeName: String?
        var decode: InstanceID?
        var decision: RoutingDecision
        var decodeDecision: RoutingDecision?
        /// The prompt's block hashes, as routed.
        var hashes: [PrefixHash]
    }

    /// Tokens per block, shared by every member (nil before any joined).
    var blockTokens: Int? { members.withLock { $0.values.first?.member.description.blockTokens } }

    /// The kind of instance that takes requests: colocated when there are any, else prefill.
    private func entryKind(_ all: [MemberState]) -> InstanceKind {
        all.contains { $0.member.description.role == .colocated } ? .colocated : .prefill
    }

    /// Routes a request without sending it: the decisions a `Plan` would carry.
    func plan(_ request: ServingRequest, excluding failed: Set<InstanceID>, record: Bool = true) throws(RemoteError) -> Plan {
        let all = members.withLock { Array($0.values) }
        guard let bt = all.first?.member.description.blockTokens else { throw .noPeer("no instance has joined") }
        let hashes = PrefixHash.chain(request.promptTokens, blockTokens: bt)
        let unavailable = failed.union(all.filter { !$0.member.connected || $0.member.draining }.map(\.member.id))
        let now = Self.now(), kind = entryKind(all)
        let decision = scheduler.withLock {
            $0.route(hashes: hashes, promptTokens: request.promptTokens.count, kind: kind, session: request.session,
                     now: now, excluding: unavailable, record: record)
        }
        guard let entry = decision.chosen, let member = all.first(where: { $0.member.id == entry }) else {
            throw .noPeer("no \(kind == .colocated ? "colocated" : "prefill") instance is reachable" + Self.down(all, kind, unavailable))
        }
        var plan = Plan(entry: entry, entryName: member.instance.name, instance: member.instance, decodeName: nil, decode: nil,
                        decision: decision, decodeDecision: nil, hashes: hashes)
        if member.member.description.role == .prefill {
            let d = scheduler.withLock {
                $0.route(hashes: hashes, promptTokens: request.promptTokens.count, kind: .decode, session: request.session,
                         now: now, excluding: unavailable, record: record)
            }
            guard let decode = d.chosen, let dm = all.first(where: { $0.member.id == decode }) else {
                throw .noPeer("no decode instance is reachable" + Self.down(all, .decode, unavailable))
            }
            plan.decode = decode
            plan.decodeName = dm.instance.name
            plan.decodeDecision = d
        }
        return plan
    }

    /// ": A, B not answering" for the members of `kind` that are out.
    private static func down(_ all: [MemberState], _ kind: InstanceKind, _ out: Set<InstanceID>) -> String {
        let names = all.filter { $0.member.description.role.kind == kind && out.contains($0.member.id) }.map(\.member.name).sorted()
        return names.isEmpty ? "" : ": \(names.joined(separator: ", ")) not answering"
    }

    func serve(_ request: ServingRequest, id: RequestID, into out: AsyncThrowingStream<RequestOutput, any Error>.Continuation) async {
        var failed: Set<InstanceID> = []
        var lastError: any Error = RemoteError.noPeer("no instance can take requests")
        for attempt in 0..<max(1, configuration.attempts) {
            if Task.isCancelled { return out.finish() }
            let plan: Plan
            do {
                plan = try self.plan(request, excluding: failed)
            } catch {
                if attempt == 0 { lastError = error }
                break
            }
            if attempt > 0 { metrics.retries.increment() }
            logger.debug("request \(request.traceID.isEmpty ? "\(id)" : request.traceID) (\(request.promptTokens.count) tokens) to \(plan.entryName): \(plan.decision.reason)")
            metrics.decided(policy: configuration.policy.rawValue, matchedTokens: (plan.decision.chosenScore?.matchedTokens ?? 0))
            routed(plan, request)
            var started = false
            if let order = plan.decision.transfer { await carryOut(order, request) }
            do {
                for try await output in plan.instance.generate(request, decodePeer: plan.decodeName) {
                    var o = output
                    o.id = id
                    if !started {
                        started = true
                        self.started(plan, request, running: true)
                    }
                    out.yield(o)
                }
                // Accounted before the client hears of the end, so its next request (the next
                // turn of a conversation) sees this one gone.
                ended(plan, started: started, request)
                return out.finish()
            } catch {
                ended(plan, started: started, request)
                // A refusal is the request's own; after output the client has seen part of an
                // answer: both end here. Before output, another instance may serve it.
                if started || error is EngineError || Task.isCancelled { return out.finish(throwing: error) }
                lastError = error
                failed.insert(plan.entry)
                logger.warning("request \(request.traceID.isEmpty ? "\(id)" : request.traceID) failed on \(plan.entryName) before its first token, routing again: \(error)")
            }
        }
        out.finish(throwing: lastError)
    }

    /// Counts the request against its instances until it ends (the debug endpoint shows it;
    /// the scheduler counts its own pending load until the next report).
    private func routed(_ plan: Plan, _ request: ServingRequest) {
        let uncached = max(0, request.promptTokens.count - (plan.decision.chosenScore?.matchedTokens ?? 0))
        update(plan) { m, entry in
            m.member.inFlight += 1
            m.unstarted += 1
            m.unstartedTokens += entry ? uncached : 0
        }
    }

    /// The request produced output (`running`), or failed before any: its prefill is no longer
    /// ahead of anyone.
    private func started(_ plan: Plan, _ request: ServingRequest, running: Bool) {
        let uncached = max(0, request.promptTokens.count - (plan.decision.chosenScore?.matchedTokens ?? 0))
        update(plan) { m, entry in
            m.unstarted -= 1
            m.unstartedTokens -= entry ? uncached : 0
        }
        scheduler.withLock { s in
            s.started(plan.entry, tokens: plan.decision.chargedTokens, running: running)
            s.computed(plan.entry, hashes: plan.hashes)
            if let d = plan.decode, let dd = plan.decodeDecision {
                s.started(d, tokens: dd.chargedTokens, running: running)
                s.computed(d, hashes: plan.hashes)
            }
        }
    }

    private func ended(_ plan: Plan, started: Bool, _ request: ServingRequest) {
        if started {
            scheduler.withLock { s in
                s.finished(plan.entry)
                if let d = plan.decode { s.finished(d) }
            }
        } else {
            self.started(plan, request, running: false)
        }
        update(plan) { m, _ in m.member.inFlight -= 1 }
    }

    /// Applies `change` to the plan's members (`entry`: the entry instance, not the decode one).
    private func update(_ plan: Plan, _ change: (inout MemberState, Bool) -> Void) {
        members.withLock { all in
            for (id, entry) in [(plan.entry, true)] + (plan.decode.map { [($0, false)] } ?? []) {
                guard let key = all.first(where: { $0.value.member.id == id })?.key else { continue }
                change(&all[key]!, entry)
            }
        }
    }

    /// The scheduler judged moving the missing blocks from their holder cheaper than
    /// recomputing them: the holder pushes them to the chosen instance before the request goes
    /// there. A transfer that fails or times out only costs the recompute it meant to save.
    private func carryOut(_ order: TransferOrder, _ request: ServingRequest) async {
        let (source, destination) = members.withLock { all in
            (all.values.first { $0.member.id == order.source }?.instance,
             all.values.first { $0.member.id == order.destination }?.instance.name)
        }
        guard let source, let destination else { return }
        metrics.transfers.increment()
        metrics.transferPredicted.record(.seconds(order.predictedTransferSeconds))
        metrics.recomputePredicted.record(.seconds(order.predictedRecomputeSeconds))
        let start = ContinuousClock.now
        let timeout = configuration.transferTimeout
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    _ = try await source.pushPrefix(tokens: request.promptTokens, blocks: order.toBlock, to: destination,
                                                    traceID: request.traceID)
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    throw RemoteError.peerFailed(peer: source.name, reason: "transfer timed out after \(timeout)")
                }
                try await group.next()
                group.cancelAll()
            }
            metrics.transferActual.record(ContinuousClock.now - start)
        } catch {
            logger.warning("transfer of \(order.toBlock - order.fromBlock) blocks from \(source.name) to \(destination) failed: \(error)")
        }
    }
}

extension Metrics.Timer {
    func record(_ d: Duration) {
        let (s, atto) = d.components
        recordNanoseconds(s * 1_000_000_000 + atto / 1_000_000_000)
    }
}
