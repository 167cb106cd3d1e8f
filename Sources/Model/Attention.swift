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
        let tile = Workspace.attentionTile
        let n = s.tokens.count
        let tiles = (n + tile - 1) / tile
        let items = c.headCount * tiles
        let scale = 1 / Float(hd).squareRoot()
        let qkv = ws.qkv, att = ws.att, scoresFor = ws.scores
        let threads = pool.threadCount
        let first = s.tokens.lowerBound, p0 = s.startPosition
        pool.run { t in
            let scores = scoresFor[t]
            var item = t
            while item < items {
                defer { item += threads }
                let h = item / tiles, r0 = (item % tiles) * tile
                let rows = min(tile, n - r0)
                let kvh = h / group
                let width = p0 + r0 + rows  // keys visible to the last row of the tile
                // scores[rows][width] = scale · Q[r0..][h] · K[0..<width][kvh]ᵀ
                BLAS.sgemm(transB: true, m: rows, n: width, k: hd, alpha: scale,
                           a: qkv + (first + r0) * S + h * hd, lda: S,
                           b: gK + kvh * hd, ldb: KV, c: scores, ldc: width)
                for i in 0..<rows {
                    let valid = p0 + r0 + i + 1
                    let row = scores + i * width
                    softmaxInPlace(row, valid)
                    if valid < width { (row + valid).update(repeating: 0, count: width - valid) }
                }
                // att[r0..][h] = scores · V[0..<width][kvh]
                BLAS.sgemm(m: rows, n: hd, k: width, a: scores, lda: width,
                           b: gV + kvh * hd, ldb: KV, c: att + (first + r0) * Q + h * hd, ldc: Q)
            }
        }
    }
}
