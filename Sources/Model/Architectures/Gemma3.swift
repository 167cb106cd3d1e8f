import Foundation
import GGUF
import Kernels

/// Gemma 3 (text): Llama's outline with Gemma's differences, as llama.cpp's `gemma3` runs it:
/// embedding rows scaled by √hidden; RMSNorm before *and after* attention and MLP; per-head
/// RMSNorm of q and k before RoPE (NeoX style); GeGLU (tanh GELU) MLP; attention logits scaled
/// by 1/√headDim; five sliding-window layers (`attention.sliding_window` keys, RoPE base 10000)
/// to every global one (the file's `rope.freq_base` and scaling). The converter has already
/// added Gemma's +1 to the norm weights, so they multiply as stored.
public enum Gemma3: ModelArchitecture {
    public static let names = ["gemma3"]
    /// Every 6th layer is global (llama.cpp's `set_swa_pattern(6)`).
    static let slidingWindowPattern = 6
    static let localRopeBase: Float = 10_000

    public static func configuration(from file: GGUFFile) throws(ModelError) -> TransformerConfiguration {
        let meta = ArchitectureMetadata(file: file, prefix: "gemma3.")
        var c = try meta.commonConfiguration(architecture: "gemma3", ropeStyle: .halves, attentionBias: false)
        if let valueLength = meta.optionalInt("attention.value_length"), valueLength != c.headDim {
            throw .invalidConfiguration("gemma3 key length \(c.headDim) differs from value length \(valueLength)")
        }
        c.slidingWindow = meta.optionalInt("attention.sliding_window") ?? 0
        c.slidingWindowPattern = slidingWindowPattern
        c.localRopeBase = localRopeBase
        // The 27B model's query_pre_attn_scalar is hidden / heads; the others use the head size.
        let scaleBy = c.layerCount == 62 ? c.hiddenSize / c.headCount : c.headDim
        c.attentionScale = 1 / Float(scaleBy).squareRoot()
        c.embeddingScale = Float(c.hiddenSize).squareRoot()
        return c
    }

    public static func blocks(_ loader: TensorLoader, _ c: TransformerConfiguration) throws(ModelError) -> [any DecoderBlock] {
        var blocks: [any DecoderBlock] = []
        for layer in 0..<c.layerCount { blocks.append(try Gemma3Block(layer: layer, loader, c)) }
        return blocks
    }
}

/// Gemma 3's sandwich-normed block:
///
///     q, k, v = Wq, Wk, Wv · rmsnorm(x);  q, k = rmsnorm per head (q_norm, k_norm)
///     x += rmsnorm(Wo · attention(RoPE(q), RoPE(k), v))          (post_attention_norm)
///     x += rmsnorm(Wd · (gelu(Wg · rmsnorm(x)) ⊙ Wu · rmsnorm(x))) (post_ffw_norm)
final class Gemma3Block: DecoderBlock, @unchecked Sendable {
    /// `[hidden]`: before attention, after it, before the MLP, after it.
    let attentionNorm, postAttentionNorm, ffnNorm, postFFNNorm: UnsafeMutablePointer<Float>
    /// `[headDim]`, shared by the heads.
    let qNorm, kNorm: UnsafeMutablePointer<Float>
    let qkv: ProjectionGroup
    let o: Linear
    let gateUp: ProjectionGroup
    let down: Linear
    /// Sliding-window layer: attends to the last `window` keys with the local RoPE table.
    let sliding: Bool
    let window: Int

    var projections: [Linear] { qkv.parts + [o] + gateUp.parts + [down] }

    init(layer: Int, _ loader: TensorLoader, _ c: TransformerConfiguration) throws(ModelError) {
        let p = "blk.\(layer)."
        let D = c.hiddenSize
        attentionNorm = heapCopy(try loader.vector(p + "attn_norm.weight", count: D))
        postAttentionNorm = heapCopy(try loader.vector(p + "post_attention_norm.weight", count: D))
        ffnNorm = heapCopy(try loader.vector(p + "ffn_norm.weight", count: D))
        postFFNNorm = heapCopy(try loader.vector(p + "post_ffw_norm.weight", count: D))
        qNorm = heapCopy(try loader.vector(p + "attn_q_norm.weight", count: c.headDim))
        kNorm = heapCopy(try loader.vector(p + "attn_k_norm.weight", count: c.headDim))
        qkv = try loader.stacked([(p + "attn_q.weight", c.qDim), (p + "attn_k.weight", c.kvDim), (p + "attn_v.weight", c.kvDim)],
                                 cols: D, biases: nil)
        o = try loader.linear(p + "attn_output.weight", rows: D, cols: c.qDim)
        gateUp = try loader.stacked([(p + "ffn_gate.weight", c.intermediateSize), (p + "ffn_up.weight", c.intermediateSize)],
                                    cols: D, biases: nil)
        down = try loader.linear(p + "ffn_down.weight", rows: D, cols: c.intermediateSize)
        sliding = c.isSlidingWindowLayer(layer)
        window = sliding ? c.slidingWindow : 0
    }

    deinit {
        for p in [attentionNorm, postAttentionNorm, ffnNorm, postFFNNorm, qNorm, kNorm] { p.deallocate() }
    }

    func forward(_ m: Transformer, _ batch: ForwardBatch, _ kv: KVCacheView, layer: Int) {
        let ws = m.ws, c = m.configuration
        let T = batch.tokens.count, D = c.hiddenSize, F = c.intermediateSize
        let hd = c.headDim, heads = c.headCount, kvHeads = c.kvHeadCount, eps = c.rmsNormEpsilon
        let S = c.qDim + 2 * c.kvDim, Q = c.qDim
        let x = ws.x, xn = ws.xn, qkvOut = ws.qkv, att = ws.att, gateUpOut = ws.gateUp, hidden = ws.hidden
        let qNorm = qNorm, kNorm = kNorm
        m.normRows(x, attentionNorm, xn, T)
        m.linear(xn, T, qkv, qkvOut)
        m.parallelRows(T) { rows in
            for i in rows {
                let q = qkvOut + i * S, k = q + Q
                for h in 0..<heads { rmsNorm(q + h * hd, weight: qNorm, out: q + h * hd, hd, eps: eps) }
                for h in 0..<kvHeads { rmsNorm(k + h * hd, weight: kNorm, out: k + h * hd, hd, eps: eps) }
            }
        }
        m.rotateAndStore(batch, layer: layer, kv: kv, local: sliding)
        m.attention(batch, layer: layer, kv: kv, window: window)
        // x += rmsnorm(att · Woᵀ)
        m.linear(att, T, o, xn)
        m.normRows(xn, postAttentionNorm, xn, T)
        m.addRows(x, xn, T * D)
        m.normRows(x, ffnNorm, xn, T)
        m.linear(xn, T, gateUp, gateUpOut)
        m.parallelRows(T) { rows in
            for i in rows { geluMul(gateUpOut + i * 2 * F, gateUpOut + i * 2 * F + F, out: hidden + i * F, F) }
        }
        // x += rmsnorm(hidden · Wdᵀ)
        m.linear(hidden, T, down, xn)
        m.normRows(xn, postFFNNorm, xn, T)
        m.addRows(x, xn, T * D)
    }
}
