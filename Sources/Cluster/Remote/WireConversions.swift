import Engine
import Router
import Foundation
import MemPool
import Wire

// Engine data types <-> wire messages (the serving contract's are in Router/WireConversions).

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
        h.traceID = traceID
        return h
    }
}
