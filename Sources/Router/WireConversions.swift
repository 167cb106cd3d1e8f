import Foundation
import MemPool
import Serving
import Wire

// The serving contract's types <-> wire messages, for the router and the instances alike.

extension SamplingParameters {
    package init(wire w: Memserve_V1_SamplingParams) {
        self.init()
        temperature = w.temperature
        topK = Int(w.topK)
        topP = w.topP
        minP = w.minP
        repetitionPenalty = w.repetitionPenalty
        frequencyPenalty = w.frequencyPenalty
        presencePenalty = w.presencePenalty
        seed = w.hasSeed ? w.seed : nil
        maxTokens = Int(w.maxTokens)
        stopStrings = w.stopStrings
        stopTokens = Set(w.stopTokens)
        ignoreEOS = w.ignoreEos
    }

    package var wire: Memserve_V1_SamplingParams {
        var w = Memserve_V1_SamplingParams()
        w.temperature = temperature
        w.topK = Int64(topK)
        w.topP = topP
        w.minP = minP
        w.repetitionPenalty = repetitionPenalty
        w.frequencyPenalty = frequencyPenalty
        w.presencePenalty = presencePenalty
        if let seed { w.seed = seed }
        w.maxTokens = Int64(maxTokens)
        w.stopStrings = stopStrings
        w.stopTokens = stopTokens.sorted()
        w.ignoreEos = ignoreEOS
        return w
    }
}

extension RequestOutput {
    package init(wire w: Memserve_V1_Output, id: RequestID) {
        let finish: FinishReason? = switch w.finish {
        case .stop: .stop
        case .length: .length
        case .abort: .abort
        default: nil
        }
        self.init(id: id, token: w.hasToken_p ? w.token : nil, text: w.text, finishReason: finish,
                  promptTokens: Int(w.promptTokens), cachedTokens: Int(w.cachedTokens), generatedTokens: Int(w.generatedTokens))
    }

    package var wire: Memserve_V1_Output {
        var w = Memserve_V1_Output()
        if let token {
            w.hasToken_p = true
            w.token = token
        }
        w.text = text
        w.finish = switch finishReason {
        case .stop: .stop
        case .length: .length
        case .abort: .abort
        case nil: .none
        }
        w.promptTokens = Int64(promptTokens)
        w.cachedTokens = Int64(cachedTokens)
        w.generatedTokens = Int64(generatedTokens)
        return w
    }
}

extension TierStats {
    package init(wire w: Memserve_V1_TierCounts) {
        self.init(capacity: Int(w.capacity), free: Int(w.free), used: Int(w.used), cached: Int(w.cached),
                  evictable: Int(w.evictable), guest: Int(w.guest))
    }

    package var wire: Memserve_V1_TierCounts {
        var w = Memserve_V1_TierCounts()
        w.capacity = Int64(capacity)
        w.free = Int64(free)
        w.used = Int64(used)
        w.cached = Int64(cached)
        w.evictable = Int64(evictable)
        w.guest = Int64(guest)
        return w
    }
}

extension EngineStats {
    /// An instance's counts as its Info reports them.
    package init(wire w: Memserve_V1_EngineCounts) {
        self.init(running: Int(w.running), waiting: Int(w.waiting), hot: TierStats(wire: w.hot), cold: TierStats(wire: w.cold),
                  evictions: Int(w.evictions), demotions: Int(w.demotions), cachedBlocks: Int(w.cachedBlocks),
                  pendingHandoffs: Int(w.pendingHandoffs), queuedPrefillTokens: Int(w.queuedPrefillTokens),
                  peerRoom: Int(w.peerRoom), stagedBlocks: Int(w.stagedBlocks), spilledBlocks: Int(w.spilledBlocks),
                  draining: w.draining)
    }

    package var wire: Memserve_V1_EngineCounts {
        var w = Memserve_V1_EngineCounts()
        w.running = Int64(running)
        w.waiting = Int64(waiting)
        w.hot = hot.wire
        w.cold = cold.wire
        w.evictions = Int64(evictions)
        w.demotions = Int64(demotions)
        w.cachedBlocks = Int64(cachedBlocks)
        w.pendingHandoffs = Int64(pendingHandoffs)
        w.queuedPrefillTokens = Int64(queuedPrefillTokens)
        w.peerRoom = Int64(peerRoom)
        w.stagedBlocks = Int64(stagedBlocks)
        w.spilledBlocks = Int64(spilledBlocks)
        w.draining = draining
        return w
    }
}

extension CostInputs {
    package init(wire w: Memserve_V1_CostProfile) {
        self.init(prefill: w.prefill.map { PrefillPoint(tokens: Int($0.tokens), seconds: $0.seconds) },
                  transferBytesPerSecond: w.transferBytesPerS, transferLatencySeconds: w.transferLatencyS)
    }

    package var wire: Memserve_V1_CostProfile {
        var w = Memserve_V1_CostProfile()
        w.prefill = prefill.map { p in
            var x = Memserve_V1_PrefillPoint()
            x.tokens = Int64(p.tokens)
            x.seconds = p.seconds
            return x
        }
        w.transferBytesPerS = transferBytesPerSecond
        w.transferLatencyS = transferLatencySeconds
        return w
    }
}

extension InstanceDescription {
    /// What an instance's `Info` says; fails for a role or mode this build does not know.
    package init(wire w: Memserve_V1_InstanceInfo, name: String) throws(RemoteError) {
        guard let role = InstanceRole(rawValue: w.role), let mode = PDMode(rawValue: w.pdMode) else {
            throw .incompatiblePeer(peer: name, reason: "unknown role '\(w.role)' or mode '\(w.pdMode)'")
        }
        self.init(name: w.address.isEmpty ? name : w.address, role: role, mode: mode, model: w.model,
                  blockTokens: Int(w.blockTokens), blockBytes: Int(w.blockBytes), tokenCapacity: Int(w.tokenCapacity),
                  maxContext: Int(w.maxContext), costs: CostInputs(wire: w.profile), stats: EngineStats(wire: w.stats))
    }

    package var wire: Memserve_V1_InstanceInfo {
        var i = Memserve_V1_InstanceInfo()
        i.role = role.rawValue
        i.pdMode = mode.rawValue
        i.model = model
        i.blockTokens = Int64(blockTokens)
        i.blockBytes = Int64(blockBytes)
        i.tokenCapacity = Int64(tokenCapacity)
        i.maxContext = Int64(maxContext)
        i.stats = stats.wire
        i.address = name
        i.profile = costs.wire
        return i
    }
}

extension CacheUpdate {
    package init(wire w: Memserve_V1_CacheUpdate) throws(RemoteError) {
        func hashes(_ h: [UInt64]) -> [PrefixHash] { h.map { PrefixHash(value: $0) } }
        switch w.part {
        case .snapshot(let s)?:
            self = .snapshot(seq: w.seq, entries: s.entries.map {
                CachedBlockEntry(parent: PrefixHash(value: $0.parent), hash: PrefixHash(value: $0.hash), tier: $0.cold ? .cold : .hot)
            })
        case .event(let e)?:
            let tier: BlockTier = e.cold ? .cold : .hot
            let event: MemPoolEvent
            switch e.kind {
            case .inserted: event = .inserted(parent: PrefixHash(value: e.parent), hashes: hashes(e.hashes), tokens: [], tier: tier)
            case .evicted: event = .evicted(hashes: hashes(e.hashes), tier: tier)
            case .swappedOut: event = .swappedOut(hashes: hashes(e.hashes))
            case .swappedIn: event = .swappedIn(hashes: hashes(e.hashes))
            case .deleted: event = .deleted(hashes: hashes(e.hashes), tier: tier)
            case .UNRECOGNIZED(let k): throw .protocolViolation("unknown cache event kind \(k)")
            }
            self = .event(seq: w.seq, event)
        case .load(let l)?:
            self = .load(EngineStats(wire: l))
        case nil:
            throw .protocolViolation("an empty cache update")
        }
    }

    /// The message; an `inserted` event's tokens stay behind (the router indexes hashes).
    package var wire: Memserve_V1_CacheUpdate {
        var w = Memserve_V1_CacheUpdate()
        switch self {
        case .snapshot(let seq, let entries):
            w.seq = seq
            var s = Memserve_V1_CacheSnapshot()
            s.entries = entries.map {
                var e = Memserve_V1_CacheEntry()
                e.parent = $0.parent.value
                e.hash = $0.hash.value
                e.cold = $0.tier == .cold
                return e
            }
            w.snapshot = s
        case .event(let seq, let event):
            w.seq = seq
            var e = Memserve_V1_CacheEvent()
            e.hashes = event.hashes.map(\.value)
            switch event {
            case .inserted(let parent, _, _, let tier):
                e.kind = .inserted
                e.parent = parent.value
                e.cold = tier == .cold
            case .evicted(_, let tier):
                e.kind = .evicted
                e.cold = tier == .cold
            case .swappedOut: e.kind = .swappedOut
            case .swappedIn: e.kind = .swappedIn
            case .deleted(_, let tier):
                e.kind = .deleted
                e.cold = tier == .cold
            }
            w.event = e
        case .load(let stats):
            w.load = stats.wire
        }
        return w
    }
}
