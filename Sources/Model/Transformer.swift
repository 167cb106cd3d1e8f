import Foundation
import GGUF
import Kernels

/// How a model is loaded and how large a step it must accept.
public struct ModelOptions: Sendable {
    /// Most tokens in one forward step (prefill chunk plus decode tokens).
    public var maxBatchTokens: Int = 512
    /// Most sequences asking for logits in one step.
    public var maxLogitRows: Int = 64
    /// Longest sequence; capped by the model's context length.
    public var maxContext: Int = 8192
    /// Keep fp32 copies of the projections for GEMM (prefill, big batches): ~4 bytes/weight more.
    /// Off where the quantized kernel outruns BLAS anyway (AVX-512: measured faster at 1–512 rows).
    public var denseWeights: Bool = !CPUFeatures.quantizedKernelsBeatGEMM
    /// From this many rows on, a projection uses the fp32 GEMM (when kept) instead of the
    /// quantized kernel.
    public var denseMinRows: Int = 32

    public init() {}
}

/// A decoder-only transformer running batched, paged-KV forward steps: embedding, the
/// architecture's blocks (`DecoderBlock`, one file per family in `Architectures/`), final norm
/// and output head. The blocks share this type's kernels, attention and scratch.
///
/// One instance is driven by one thread at a time: `forward` reuses preallocated scratch.
public final class Transformer: @unchecked Sendable {
    public let configuration: TransformerConfiguration
    public let weights: TransformerWeights
    public let kvLayout: KVCacheLayout
    public let pool: ThreadPool
    public let options: ModelOptions
    public let maxContext: Int
    let rope: RoPETable
    /// The sliding-window layers' table, when their base differs (Gemma 3); else nil.
    let localRope: RoPETable?
    let ws: Workspace

    /// Loads a GGUF model of any registered architecture.
    public convenience init(file: GGUFFile, options: ModelOptions = ModelOptions(), pool: ThreadPool,
                            blockTokens: Int = 16) throws(ModelError) {
        let config = try ModelRegistry.configuration(from: file)
        let weights = try TransformerWeights(file: file, configuration: config, denseCopies: options.denseWeights, pool: pool)
        self.init(configuration: config, weights: weights, options: options, pool: pool, blockTokens: blockTokens)
    }

    public init(configuration: TransformerConfiguration, weights: TransformerWeights, options: ModelOptions,
                pool: ThreadPool, blockTokens: Int = 16) {
        // The pool parallelizes GEMMs itself; BLAS threads on top would oversubscribe the cores
        // and make results depend on how busy the machine is.
        BLAS.setThreads(1)
        self.configuration = configuration
        self.weights = weights
        self.options = options
        self.pool = pool
        maxContext = min(options.maxContext, configuration.contextLength)
        kvLayout = KVCacheLayout(layerCount: configuration.layerCount, kvDim: configuration.kvDim, blockTokens: blockTokens)
        rope = RoPETable(configuration: configuration, positions: maxContext)
        if let base = configuration.localRopeBase {
            localRope = RoPETable(headDim: configuration.headDim, positions: maxContext,
                                  inverseFrequencies: RoPEScaling.none.inverseFrequencies(base: Double(base), headDim: configuration.headDim),
                                  style: configuration.ropeStyle)
        } else {
            localRope = nil
        }
        ws = Workspace(configuration: configuration, maxTokens: options.maxBatchTokens,
                       maxLogitRows: options.maxLogitRows, maxContext: maxContext, threads: pool.threadCount)
    }

    /// Checks a batch against the model's limits and the KV blocks it references.
    public func validate(_ batch: ForwardBatch, kv: KVCacheView) throws(ModelError) {
        guard batch.tokens.count <= ws.maxTokens else {
            throw .batchTooLarge(tokens: batch.tokens.count, capacity: ws.maxTokens)
        }
        guard batch.logitRows <= ws.maxLogitRows else {
            throw .batchTooLarge(tokens: batch.logitRows, capacity: ws.maxLogitRows)
        }
        let vocab = configuration.vocabularySize
        for t in batch.tokens where t < 0 || Int(t) >= vocab { throw .invalidToken(t, vocabularySize: vocab) }
        for s in batch.sequences {
            guard s.endPosition <= maxContext else { throw .contextOverflow(position: s.endPosition, contextLength: maxContext) }
            guard s.blockTable.count >= kvLayout.blocks(forTokens: s.endPosition),
                  s.tokens.lowerBound >= 0, s.tokens.upperBound <= batch.tokens.count,
                  s.blockTable.allSatisfy({ $0 >= 0 && Int($0) < kv.blockCount }) else {
                throw .invalidConfiguration("sequence block table does not cover positions 0..<\(s.endPosition)")
            }
        }
    }

    /// Runs one step: appends the batch's tokens' K/V to their blocks and returns the logits of
    /// the sequences that want them, in batch order.
    public func forward(_ batch: ForwardBatch, kv: KVCacheView) throws(ModelError) -> Logits {
        try validate(batch, kv: kv)
        let c = configuration
        let T = batch.tokens.count
        let D = c.hiddenSize
        let x = ws.x

        // x[T][D] = embedding rows
        batch.tokens.withUnsafeBufferPointer { toks in
            let emb = weights.embedding
            parallelRows(T) { rows in
                for i in rows { dequantize(emb.format, emb.row(Int(toks[i])), x + i * D, count: D) }
            }
        }
        if let scale = c.embeddingScale { scaleInPlace(x, scale, T * D) }

        for (l, block) in weights.blocks.enumerated() { block.forward(self, batch, kv, layer: l) }

        // logitInput[R][D] = rmsnorm(x[last token of each sequence wanting logits])
        var r = 0
        for s in batch.sequences where s.wantsLogits {
            rmsNorm(x + (s.tokens.upperBound - 1) * D, weight: weights.outputNorm, out: ws.logitInput + r * D, D,
                    eps: c.rmsNormEpsilon)
            r += 1
        }
        if r > 0 { linear(ws.logitInput, r, weights.output, ws.logits) }
        return Logits(base: ws.logits, rows: r, vocabularySize: c.vocabularySize)
    }

    // MARK: - Steps

    /// out[n][w.rows] = input[n][w.cols] · Wᵀ (+ bias). GEMM over the fp32 copy from
    /// `denseMinRows` rows on, else the quantized kernel (one pass over the packed weights).
    @inline(__always)
    func linear(_ input: UnsafePointer<Float>, _ n: Int, _ w: Linear, _ out: UnsafeMutablePointer<Float>,
                outStride: Int? = nil) {
        let rows = w.rows, cols = w.cols, ldo = outStride ?? rows
        if n >= options.denseMinRows, let dense = w.dense {
            parallelSgemm(pool: pool, transB: true, m: n, n: rows, k: cols, a: input, lda: cols, b: dense, ldb: cols,
                          c: out, ldc: ldo)
        } else {
            quantizedMatMul(w.quantized, x: input, xStride: cols, batch: n, y: out, yStride: ldo, pool: pool)
        }
        if let bias = w.bias {
            for i in 0..<n { addInPlace(out + i * ldo, bias, rows) }
        }
    }

    /// out[n][g.rows] = the group's projections of input, each part into its columns.
    @inline(__always)
    func linear(_ input: UnsafePointer<Float>, _ n: Int, _ g: ProjectionGroup, _ out: UnsafeMutablePointer<Float>) {
        if g.parts.count == 1 { linear(input, n, g.parts[0], out); return }
        var offset = 0
        for part in g.parts {
            linear(input, n, part, out + offset, outStride: g.rows)
            offset += part.rows
        }
    }

    /// out[i] = rmsnorm(x[i]) · weight for i in 0..<n.
    @inline(__always)
    func normRows(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        let d = configuration.hiddenSize, eps = configuration.rmsNormEpsilon
        parallelRows(n) { rows in
            for i in rows { rmsNorm(x + i * d, weight: weight, out: out + i * d, d, eps: eps) }
        }
    }

    @inline(__always)
    func addRows(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ count: Int) {
        if count < 1 << 14 { addInPlace(y, x, count); return }
        let threads = pool.threadCount
        pool.run { t in
            let part = ThreadPool.split(count, part: t, of: threads)
            addInPlace(y + part.lowerBound, x + part.lowerBound, part.count)
        }
    }

    /// Runs `body` over slices of 0..<n on the pool, or inline when n is small.
    @inline(__always)
    func parallelRows(_ n: Int, _ body: (Range<Int>) -> Void) {
        if n < 8 { body(0..<n); return }
        let threads = pool.threadCount
        pool.run { t in
            let part = ThreadPool.split(n, part: t, of: threads)
            if !part.isEmpty { body(part) }
        }
    }

    /// Applies RoPE (the global table, or `local`) to the new tokens' q and k and writes their
    /// k, v into the KV blocks.
    func rotateAndStore(_ batch: ForwardBatch, layer: Int, kv: KVCacheView, local: Bool = false) {
        let rope = local ? (localRope ?? self.rope) : self.rope
        let c = configuration, layout = kvLayout
        let Q = c.qDim, KV = c.kvDim, S = Q + 2 * KV, bt = layout.blockTokens
        let qkv = ws.qkv
        let kOff = layout.keyOffset(layer: layer), vOff = layout.valueOffset(layer: layer)
        for s in batch.sequences {
            s.blockTable.withUnsafeBufferPointer { table in
                parallelRows(s.tokens.count) { rows in
                    for j in rows {
                        let i = s.tokens.lowerBound + j
                        let pos = s.startPosition + j
                        let q = qkv + i * S, k = q + Q, v = k + KV
                        rope.apply(q, heads: c.headCount, position: pos)
                        rope.apply(k, heads: c.kvHeadCount, position: pos)
                        let block = kv.block(table[pos / bt])
                        let slot = (pos % bt) * KV
                        (block + kOff + slot).update(from: k, count: KV)
                        (block + vOff + slot).update(from: v, count: KV)
                    }
                }
            }
        }
    }
}
