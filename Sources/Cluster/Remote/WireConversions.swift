import Engine
import Foundation
import MemPool
import Wire

// Engine data types <-> wire messages. Conversions live here so the Engine stays free of
// protobuf and the wire format stays one file's concern.

extension SamplingParameters {
    init(wire w: Memserve_V1_SamplingParams) {
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

    var wire: Memserve_V1_SamplingParams {
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
    init(wire w: Memserve_V1_Output, id: RequestID) {
        let finish: FinishReason? = switch w.finish {
        case .stop: .stop
        case .length: .length
        case .abort: .abort
        default: nil
        }
        self.init(id: id, token: w.hasToken_p ? w.token : nil, text: w.text, finishReason: finish,
                  promptTokens: Int(w.promptTokens), cachedTokens: Int(w.cachedTokens), generatedTokens: Int(w.generatedTokens))
    }

    var wire: Memserve_V1_Output {
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
    init(wire w: Memserve_V1_TierCounts) {
        self.init(capacity: Int(w.capacity), free: Int(w.free), used: Int(w.used), cached: Int(w.cached),
                  evictable: Int(w.evictable))
    }

    var wire: Memserve_V1_TierCounts {
        var w = Memserve_V1_TierCounts()
        w.capacity = Int64(capacity)
        w.free = Int64(free)
        w.used = Int64(used)
        w.cached = Int64(cached)
        w.evictable = Int64(evictable)
        return w
    }
}

extension EngineStats {
    /// An instance's counts as its Info reports them.
    public init(wire w: Memserve_V1_EngineCounts) {
        self.init(running: Int(w.running), waiting: Int(w.waiting), hot: TierStats(wire: w.hot), cold: TierStats(wire: w.cold),
                  evictions: Int(w.evictions), demotions: Int(w.demotions), cachedBlocks: Int(w.cachedBlocks),
                  pendingHandoffs: Int(w.pendingHandoffs))
    }

    var wire: Memserve_V1_EngineCounts {
        var w = Memserve_V1_EngineCounts()
        w.running = Int64(running)
        w.waiting = Int64(waiting)
        w.hot = hot.wire
        w.cold = cold.wire
        w.evictions = Int64(evictions)
        w.demotions = Int64(demotions)
        w.cachedBlocks = Int64(cachedBlocks)
        w.pendingHandoffs = Int64(pendingHandoffs)
        return w
    }
}

extension Handoff {
    /// Everything a decode instance in another process needs but the KV bytes.
    func wireHeader(blockBytes: Int, returnPeer: String) -> Memserve_V1_HandoffHeader {
        var h = Memserve_V1_HandoffHeader()
        h.tokens = tokens
        h.promptCount = Int64(promptCount)
        h.cachedTokens = Int64(cachedTokens)
        h.sampling = sampling.wire
        h.rngState = sampler.randomState
        h.decoderPending = Data(decoder.pendingBytes)
        h.stopPending = stopMatcher.heldText
        h.blockCount = Int64(blocks.count)
        h.blockBytes = Int64(blockBytes)
        h.returnPeer = returnPeer
        return h
    }
}
