import GGUF
import Kernels

/// Llama family (Llama 2/3, SmolLM, Mistral-style GQA): RMSNorm, RoPE on adjacent pairs,
/// SwiGLU MLP, no biases, optionally tied embedding.
public enum Llama: ModelArchitecture {
    public static let names = ["llama"]

    public static func configuration(from file: GGUFFile) throws(ModelError) -> TransformerConfiguration {
        try ArchitectureMetadata(file: file, prefix: "llama.")
            .commonConfiguration(architecture: "llama", ropeStyle: .adjacentPairs, attentionBias: false)
    }

    public static func blocks(_ loader: TensorLoader, _ configuration: TransformerConfiguration) throws(ModelError) -> [any DecoderBlock] {
        try LlamaBlock.layers(loader, configuration)
    }
}

/// Llama's pre-norm block:
///
///     x += Wo · attention(RoPE(Wq, Wk, Wv · rmsnorm(x)))
///     x += Wd · (silu(Wg · rmsnorm(x)) ⊙ Wu · rmsnorm(x))
///
/// Q, K and V are one stacked projection (biased when the configuration says so: Qwen2), gate
/// and up another, so each is one pass over its input and one thread-pool round.
final class LlamaBlock: DecoderBlock, @unchecked Sendable {
    /// `[hidden]` each.
    let attentionNorm: UnsafeMutablePointer<Float>
    let ffnNorm: UnsafeMutablePointer<Float>
    /// Q, K and V stacked: `[Q + 2·KV][hidden]`.
    let qkv: ProjectionGroup
    let o: Linear
    /// Gate and up stacked: `[2·FFN][hidden]`.
    let gateUp: ProjectionGroup
    let down: Linear

    var projections: [Linear] { qkv.parts + [o] + gateUp.parts + [down] }

    /// Every layer of `c`, loaded.
    static func layers(_ loader: TensorLoader, _ c: TransformerConfiguration) throws(ModelError) -> [any DecoderBlock] {
        var blocks: [any DecoderBlock] = []
        for layer in 0..<c.layerCount { blocks.append(try LlamaBlock(layer: layer, loader, c)) }
        return blocks
    }

    init(layer: Int, _ loader: TensorLoader, _ c: TransformerConfiguration) throws(ModelError) {
        let p = "blk.\(layer)."
        let qkvParts = [("attn_q", c.qDim), ("attn_k", c.kvDim), ("attn_v", c.kvDim)]
        attentionNorm = heapCopy(try loader.vector(p + "attn_norm.weight", count: c.hiddenSize))
        ffnNorm = heapCopy(try loader.vector(p + "ffn_norm.weight", count: c.hiddenSize))
        qkv = try loader.stacked(qkvParts.map { (p + $0.0 + ".weight", $0.1) }, cols: c.hiddenSize,
                                 biases: c.attentionBias ? qkvParts.map { p + $0.0 + ".bias" } : nil)
        o = try loader.linear(p + "attn_output.weight", rows: c.hiddenSize, cols: c.qDim)
        gateUp = try loader.stacked([(p + "ffn_gate.weight", c.intermediateSize), (p + "ffn_up.weight", c.intermediateSize)],
                                    cols: c.hiddenSize, biases: nil)
        down = try loader.linear(p + "ffn_down.weight", rows: c.hiddenSize, cols: c.intermediateSize)
    }

    deinit {
        attentionNorm.deallocate()
        ffnNorm.deallocate()
    }

    func forward(_ m: Transformer, _ batch: ForwardBatch, _ kv: KVCacheView, layer: Int) {
        let ws = m.ws
        let T = batch.tokens.count, D = m.configuration.hiddenSize, F = m.configuration.intermediateSize
        let x = ws.x, xn = ws.xn, qkvOut = ws.qkv, att = ws.att, gateUpOut = ws.gateUp, hidden = ws.hidden
        // xn[T][D] = rmsnorm(x)
        m.normRows(x, attentionNorm, xn, T)
        // qkv[T][Q + 2·KV]
        m.linear(xn, T, qkv, qkvOut)
        m.rotateAndStore(batch, layer: layer, kv: kv)
        m.attention(batch, layer: layer, kv: kv)
        // x += att · Woᵀ
        m.linear(att, T, o, xn)
        m.addRows(x, xn, T * D)
        m.normRows(x, ffnNorm, xn, T)
        // gateUp[T][2F] = xn · [Wg; Wu]ᵀ, hidden[T][F] = silu(gate) * up
        m.linear(xn, T, gateUp, gateUpOut)
        m.parallelRows(T) { rows in
            for i in rows { siluMul(gateUpOut + i * 2 * F, gateUpOut + i * 2 * F + F, out: hidden + i * F, F) }
        }
        // x += hidden · Wdᵀ
        m.linear(hidden, T, down, xn)
        m.addRows(x, xn, T * D)
    }
}
