import Foundation
import Kernels

extension Transformer {
    /// Sequences with at most this many new tokens attend straight from their blocks; longer
    /// ones gather their K/V and use GEMM per head.
    static let directAttentionMaxTokens = 4

    /// att[T][Q] = causal softmax(scale·q·Kᵀ)·V for every new token, K/V read through each
    /// sequence's block table (the new tokens' K/V are already stored). With a `window` > 0 a
    /// query at position p sees only the keys at p - window + 1 ... p (sliding-window layers).
    func attention(_ batch: ForwardBatch, layer: Int, kv: KVCacheView, window: Int = 0) {
        var hasDirect = false
        for s in batch.sequences {
            if s.tokens.count > Self.directAttentionMaxTokens {
                gatheredAttention(s, layer: layer, kv: kv, window: window)
            } else {
                hasDirect = true
            }
        }
        if hasDirect { directAttention(batch, layer: layer, kv: kv, window: window) }
    }

    /// The scale of the attention logits.
    var attentionScale: Float { configuration.attentionScale ?? 1 / Float(configuration.headDim).squareRoot() }

    /// Decode-shaped sequences: one work item per (sequence, KV head), spread over the pool.
    func directAttention(_ batch: ForwardBatch, layer: Int, kv: KVCacheView, window: Int) {
        let c = configuration, layout = kvLayout
        let hd = c.headDim, Q = c.qDim, KV = c.kvDim, S = Q + 2 * KV, bt = layout.blockTokens
        let group = c.headCount / c.kvHeadCount
        let kvHeads = c.kvHeadCount
        let kOff = layout.keyOffset(layer: layer), vOff = layout.valueOffset(layer: layer)
        let scale = attentionScale
        let qkv = ws.qkv, att = ws.att
        let threads = pool.threadCount
        let sequences = batch.sequences
        let items = sequences.count * kvHeads
        let scoresFor = ws.scores
        pool.run { t in
            let scores = scoresFor[t]
            var item = t
            while item < items {
                defer { item += threads }
                let s = sequences[item / kvHeads]
                if s.tokens.count > Self.directAttentionMaxTokens { continue }
                let kvh = item % kvHeads
                s.blockTable.withUnsafeBufferPointer { table in
                    for j in 0..<s.tokens.count {
                        let row = s.tokens.lowerBound + j
                        let len = s.startPosition + j + 1
                        let lo = window > 0 ? max(0, len - window) : 0
                        for h in kvh * group..<(kvh + 1) * group {
                            let qv = qkv + row * S + h * hd
                            // scores[t - lo] = scale · q · K[t] over the blocks holding lo..<len
                            var pos = lo
                            while pos < len {
                                let off = pos % bt
                                let keys = kv.block(table[pos / bt]) + kOff + kvh * hd + off * KV
                                let n = min(bt - off, len - pos)
                                for i in 0..<n { scores[pos - lo + i] = dot(qv, keys + i * KV, hd) * scale }
                                pos += n
                            }
                            softmaxInPlace(scores, len - lo)
                            // out = Σ scores[t - lo] · V[t]
                            let out = att + row * Q + h * hd
                            out.update(repeating: 0, count: hd)
                            pos = lo
                            while pos < len {
                                let off = pos % bt
                                let values = kv.block(table[pos / bt]) + vOff + kvh * hd + off * KV
                                let n = min(bt - off, len - pos)
                                for i in 0..<n { axpy(scores[pos - lo + i], values + i * KV, out, hd) }
                                pos += n
                            }
                        }
                    }
                }
            }
        }
    }

    /// Prefill-shaped sequence: gather its K/V `[ctx][KV]`, then per (head, query tile)
    /// S = Q·Kᵀ, causal softmax, O = S·V through GEMM.
    func gatheredAttention(_ s: SequenceSlice, layer: Int, kv: KVCacheView, window: Int) {
        let c = configuration, layout = kvLayout
        let hd = c.headDim, Q = c.qDim, KV = c.kvDim, S = Q + 2 * KV, bt = layout.blockTokens
        let group = c.headCount / c.kvHeadCount
        let kOff = layout.keyOffset(layer: layer), vOff = layout.valueOffset(layer: layer)
        let ctx = s.endPosition
        let gK = ws.gatheredK, gV = ws.gatheredV
        let blocks = layout.blocks(forTokens: ctx)
        // gK[ctx][KV], gV[ctx][KV]
        s.blockTable.withUnsafeBufferPointer { table in
            parallelRows(blocks) { range in
                for b in range {
                    let n = min(bt, ctx - b * bt)
                    let block = kv.block(table[b])
                    (gK + b * bt * KV).update(from: block + kOff, count: n * KV)
                    (gV + b * bt * KV).update(from: block + vOff, count: n * KV)
                }
            }
        }
        // Work items are (KV head, query tile): the `group` query heads sharing a KV head are
        // stacked into one GEMM of group·rows rows, so K and V are streamed once per group.
        let n = s.tokens.count
        let threads = pool.threadCount
        let wantTiles = max(1, (2 * threads + c.kvHeadCount - 1) / c.kvHeadCount)
        let tile = min(Workspace.attentionTile, max(8, (n + wantTiles - 1) / wantTiles))
        let tiles = (n + tile - 1) / tile
        let items = c.kvHeadCount * tiles
        let scale = attentionScale
        let qkv = ws.qkv, att = ws.att, scoresFor = ws.scores, stackFor = ws.headStack
        let first = s.tokens.lowerBound, p0 = s.startPosition
        pool.run { t in
            let scores = scoresFor[t]
            // qs[group·rows][hd] stacked queries, then the stacked outputs
            let qs = stackFor[t]
            var item = t
            while item < items {
                defer { item += threads }
                let kvh = item / tiles, r0 = (item % tiles) * tile
                let rows = min(tile, n - r0)
                let m = group * rows
                // Keys from `start` (the first row's window start) to those the last row sees.
                let start = window > 0 ? max(0, p0 + r0 + 1 - window) : 0
                let width = p0 + r0 + rows - start
                for g in 0..<group {
                    let h = kvh * group + g
                    for i in 0..<rows {
                        (qs + (g * rows + i) * hd).update(from: qkv + (first + r0 + i) * S + h * hd, count: hd)
                    }
                }
                // scores[m][width] = scale · qs · K[start..<start + width][kvh]ᵀ
                BLAS.sgemm(transB: true, m: m, n: width, k: hd, alpha: scale, a: qs, lda: hd,
                           b: gK + start * KV + kvh * hd, ldb: KV, c: scores, ldc: width)
                for r in 0..<m {
                    let query = p0 + r0 + r % rows
                    let valid = query + 1 - start
                    let lead = window > 0 ? max(0, query + 1 - window) - start : 0
                    let row = scores + r * width
                    if lead > 0 { row.update(repeating: 0, count: lead) }
                    softmaxInPlace(row + lead, valid - lead)
                    if valid < width { (row + valid).update(repeating: 0, count: width - valid) }
                }
                // qs[m][hd] = scores · V[start..<start + width][kvh], then back to each head's columns of att
                BLAS.sgemm(m: m, n: hd, k: width, a: scores, lda: width, b: gV + start * KV + kvh * hd, ldb: KV, c: qs, ldc: hd)
                for g in 0..<group {
                    let h = kvh * group + g
                    for i in 0..<rows {
                        (att + (first + r0 + i) * Q + h * hd).update(from: qs + (g * rows + i) * hd, count: hd)
                    }
                }
            }
        }
    }
}
