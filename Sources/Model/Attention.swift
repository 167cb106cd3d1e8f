import Foundation
import Kernels

extension Transformer {
    /// Sequences with at most this many new tokens attend straight from their blocks; longer
    /// ones gather their K/V and use GEMM per head.
    static let directAttentionMaxTokens = 4

    /// att[T][Q] = causal softmax(q·Kᵀ/√d)·V for every new token, K/V read through each
    /// sequence's block table (the new tokens' K/V are already stored).
    func attention(_ batch: ForwardBatch, layer: Int, kv: KVCacheView) {
        var hasDirect = false
        for s in batch.sequences {
            if s.tokens.count > Self.directAttentionMaxTokens {
                gatheredAttention(s, layer: layer, kv: kv)
            } else {
                hasDirect = true
            }
        }
        if hasDirect { directAttention(batch, layer: layer, kv: kv) }
    }

    /// Decode-shaped sequences: one work item per (sequence, KV head), spread over the pool.
    func directAttention(_ batch: ForwardBatch, layer: Int, kv: KVCacheView) {
        let c = configuration, layout = kvLayout
        let hd = c.headDim, Q = c.qDim, KV = c.kvDim, S = Q + 2 * KV, bt = layout.blockTokens
        let group = c.headCount / c.kvHeadCount
        let kvHeads = c.kvHeadCount
        let kOff = layout.keyOffset(layer: layer), vOff = layout.valueOffset(layer: layer)
        let scale = 1 / Float(hd).squareRoot()
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
                        for h in kvh * group..<(kvh + 1) * group {
                            let qv = qkv + row * S + h * hd
                            // scores[t] = q · K[t] / √d over the blocks holding 0..<len
                            var pos = 0
                            var b = 0
                            while pos < len {
                                let keys = kv.block(table[b]) + kOff + kvh * hd
                                let n = min(bt, len - pos)
                                for i in 0..<n { scores[pos + i] = dot(qv, keys + i * KV, hd) * scale }
                                pos += n
                                b += 1
                            }
                            softmaxInPlace(scores, len)
                            // out = Σ scores[t] · V[t]
                            let out = att + row * Q + h * hd
                            out.update(repeating: 0, count: hd)
                            pos = 0
                            b = 0
                            while pos < len {
                                let values = kv.block(table[b]) + vOff + kvh * hd
                                let n = min(bt, len - pos)
                                for i in 0..<n { axpy(scores[pos + i], values + i * KV, out, hd) }
                                pos += n
                                b += 1
                            }
                        }
                    }
                }
            }
        }
    }

    /// Prefill-shaped sequence: gather its K/V `[ctx][KV]`, then per (head, query tile)
    /// S = Q·Kᵀ, causal softmax, O = S·V through GEMM.
    func gatheredAttention(_ s: SequenceSlice, layer: Int, kv: KVCacheView) {
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
        let scale = 1 / Float(hd).squareRoot()
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
                let width = p0 + r0 + rows  // keys visible to the last row of the tile
                for g in 0..<group {
                    let h = kvh * group + g
                    for i in 0..<rows {
                        (qs + (g * rows + i) * hd).update(from: qkv + (first + r0 + i) * S + h * hd, count: hd)
                    }
                }
                // scores[m][width] = scale · qs · K[0..<width][kvh]ᵀ
                BLAS.sgemm(transB: true, m: m, n: width, k: hd, alpha: scale, a: qs, lda: hd,
                           b: gK + kvh * hd, ldb: KV, c: scores, ldc: width)
                for r in 0..<m {
                    let valid = p0 + r0 + r % rows + 1
                    let row = scores + r * width
                    softmaxInPlace(row, valid)
                    if valid < width { (row + valid).update(repeating: 0, count: width - valid) }
                }
                // qs[m][hd] = scores · V[0..<width][kvh], then back to each head's columns of att
                BLAS.sgemm(m: m, n: hd, k: width, a: scores, lda: width, b: gV + kvh * hd, ldb: KV, c: qs, ldc: hd)
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
