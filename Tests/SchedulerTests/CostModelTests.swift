import MemPool
import Scheduler
import Testing

@Suite("Transfer or recompute")
struct CostModelTests {
    @Test func profilesFitMeasuredPrefills() {
        // Two points: the per-token and attention terms.
        let b = 2e-4, k = 1e-7
        let two = InstanceProfile(blockTokens: 16, blockBytes: 1 << 16,
                                  prefillSamples: [64, 512].map { PrefillSample(tokens: $0, seconds: b * Double($0) + k * Double($0 * $0) / 2) },
                                  transferBytesPerSecond: 1e9)
        #expect(abs(two.prefillSecondsPerToken - b) < 1e-9 && abs(two.attentionSecondsPerTokenPair - k) < 1e-12)
        #expect(two.prefillOverheadSeconds == 0)
        #expect(abs(two.prefillSeconds(tokens: 2048, cachedTokens: 0) - (b * 2048 + k * 2048 * 2048 / 2)) < 1e-9)
        // Three points with an overhead.
        let a = 0.005
        let three = InstanceProfile(blockTokens: 16, blockBytes: 1 << 16,
                                    prefillSamples: [64, 512, 2048].map { PrefillSample(tokens: $0, seconds: a + b * Double($0) + k * Double($0 * $0) / 2) },
                                    transferBytesPerSecond: 1e9)
        #expect(abs(three.prefillOverheadSeconds - a) < 1e-8 && abs(three.prefillSecondsPerToken - b) < 1e-9)
        // Times that fall with length cannot make negative terms.
        let odd = InstanceProfile(blockTokens: 16, blockBytes: 1 << 16,
                                  prefillSamples: [PrefillSample(tokens: 64, seconds: 0.02), PrefillSample(tokens: 512, seconds: 0.01)],
                                  transferBytesPerSecond: 1e9)
        #expect(odd.prefillOverheadSeconds >= 0 && odd.prefillSecondsPerToken >= 0 && odd.attentionSecondsPerTokenPair >= 0)
        #expect(odd.prefillSeconds(tokens: 512, cachedTokens: 0) > 0)
        // Cached tokens are not paid for; their attention context still is.
        let p = profile(perTokenSeconds: 1e-4, overhead: 0, attention: 1e-8)
        #expect(p.prefillSeconds(tokens: 1000, cachedTokens: 1000) == 0)
        #expect(abs(p.prefillSeconds(tokens: 1000, cachedTokens: 900) - (1e-4 * 100 + 1e-8 * (1e6 - 810_000) / 2)) < 1e-12)
    }

    /// Holder i0 caches 64 blocks of a 1,100-token prompt but is overloaded past the balance
    /// thresholds; i1 (which caches 10) is chosen. A fast link moves the 54 missing blocks, a slow
    /// one does not.
    func decide(gbps: Double, latency: Double = 0) -> (RoutingDecision, GlobalScheduler, [InstanceID]) {
        let s = GlobalScheduler(policy: .promptTree, costModel: CostModel())
        let ids = (0..<2).map { _ in s.join(kind: .colocated, profile: profile(perTokenSeconds: 1e-4, attention: 1e-8, gbps: gbps, latency: latency)) }
        let hashes = chainHashes(4, blocks: 68, blockTokens: 16)
        s.tree(.colocated).apply(inserted(hashes, 0, 64), from: ids[0])
        s.tree(.colocated).apply(inserted(hashes, 0, 10, tier: .cold), from: ids[1])
        s.updateLoad(ids[0], InstanceLoad(running: 60, waiting: 8, freeBlocks: 900, totalBlocks: 1000), now: 1)
        s.updateLoad(ids[1], InstanceLoad(running: 2, freeBlocks: 900, totalBlocks: 1000), now: 1)
        return (s.route(hashes: hashes, promptTokens: 1100, kind: .colocated, now: 2), s, ids)
    }

    @Test func aFastLinkTransfers() throws {
        let (d, s, ids) = decide(gbps: 10, latency: 1e-4)
        #expect(d.chosen == ids[1])
        let t = try #require(d.transfer)
        #expect(t.source == ids[0] && t.destination == ids[1] && t.fromBlock == 10 && t.toBlock == 64 && t.blocks == 54)
        // The figures are the model's, and consistent with the candidates' rows.
        let p = s.profile(of: ids[1])!
        #expect(t.predictedTransferSeconds == CostModel().transferSeconds(blocks: 54, source: p, destination: p))
        #expect(abs(t.predictedTransferSeconds - (1e-4 + 54.0 * 65536 / 10e9)) < 1e-12)
        #expect(t.predictedRecomputeSeconds == CostModel().recomputeSeconds(promptTokens: 1100, fromBlock: 10, toBlock: 64, destination: p))
        #expect(abs(t.predictedRecomputeSeconds - (1e-4 * 864 + 1e-8 * (1024.0 * 1024 - 160 * 160) / 2)) < 1e-12)
        #expect(t.predictedTransferSeconds < t.predictedRecomputeSeconds)
        #expect(d.chosenScore?.matchedTokens == t.fromBlock * 16 && d.chosenScore?.hotTokens == 0)
        #expect(d.candidates.first { $0.instance == t.source }?.matchedTokens == t.toBlock * 16)
        #expect(d.reason.contains("transfer"))
    }

    @Test func aSlowLinkRecomputes() {
        let (d, s, ids) = decide(gbps: 0.001)
        #expect(d.chosen == ids[1] && d.transfer == nil)
        let p = s.profile(of: ids[1])!
        #expect(CostModel().transferSeconds(blocks: 54, source: p, destination: p)
            > CostModel().recomputeSeconds(promptTokens: 1100, fromBlock: 10, toBlock: 64, destination: p))
        // A link's latency alone can make a transfer not worth it.
        let (e, _, _) = decide(gbps: 1000, latency: 1)
        #expect(e.transfer == nil)
    }

    @Test func promptTreeWeighsTheTransferInItsScore() throws {
        // Balanced request counts, but the holder's queue is long: an idle instance fed by a
        // transfer has the earliest first token.
        let s = GlobalScheduler(policy: .promptTree, costModel: CostModel())
        let ids = (0..<3).map { _ in s.join(kind: .colocated, profile: profile(gbps: 10)) }
        let hashes = chainHashes(6, blocks: 128, blockTokens: 16)
        s.tree(.colocated).apply(inserted(hashes, 0, 120), from: ids[0])
        s.updateLoad(ids[0], InstanceLoad(running: 3, waiting: 3, queuedPrefillTokens: 6000, freeBlocks: 900, totalBlocks: 1000), now: 1)
        for id in ids.dropFirst() { s.updateLoad(id, InstanceLoad(running: 3, waiting: 2, freeBlocks: 900, totalBlocks: 1000), now: 1) }
        let d = s.route(hashes: hashes, promptTokens: 2048, kind: .colocated, now: 2)
        #expect(d.chosen != ids[0] && !d.reason.contains("unbalanced"))
        let t = try #require(d.transfer)
        #expect(t.source == ids[0] && t.fromBlock == 0 && t.toBlock == 120)
        // Without transfers the same holder's cache is worth its queue.
        let n = GlobalScheduler(policy: .promptTree, costModel: CostModel(enabled: false))
        let nids = (0..<3).map { _ in n.join(kind: .colocated, profile: profile(gbps: 10)) }
        n.tree(.colocated).apply(inserted(hashes, 0, 120), from: nids[0])
        n.updateLoad(nids[0], InstanceLoad(running: 3, waiting: 3, queuedPrefillTokens: 1500, freeBlocks: 900, totalBlocks: 1000), now: 1)
        for id in nids.dropFirst() { n.updateLoad(id, InstanceLoad(running: 3, waiting: 2, freeBlocks: 900, totalBlocks: 1000), now: 1) }
        let e = n.route(hashes: hashes, promptTokens: 2048, kind: .colocated, now: 2)
        #expect(e.chosen == nids[0] && e.transfer == nil)
    }

    @Test func noTransferWithoutABetterHolder() {
        let m = CostModel()
        let c = Candidate(instance: InstanceID(1), load: InstanceLoad(), profile: profile(), matchedBlocks: 20)
        var h = c
        h.instance = InstanceID(2)
        #expect(m.order(promptTokens: 400, promptBlocks: 25, destination: c, source: h) == nil)
        h.matchedBlocks = 24
        #expect(m.order(promptTokens: 400, promptBlocks: 25, destination: c, source: h) != nil)
        #expect(CostModel(minimumBlocks: 8).order(promptTokens: 400, promptBlocks: 25, destination: c, source: h) == nil)
        #expect(CostModel(enabled: false).order(promptTokens: 400, promptBlocks: 25, destination: c, source: h) == nil)
    }
}
