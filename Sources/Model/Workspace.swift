/// Scratch buffers of the forward pass, allocated once for the largest step the model
/// accepts so that a step allocates nothing.
final class Workspace: @unchecked Sendable {
    let maxTokens: Int
    let maxLogitRows: Int
    let maxContext: Int
    /// Rows of the query tile in prefill attention.
    static let attentionTile = 64

    /// `[T][D]` residual stream.
    let x: UnsafeMutablePointer<Float>
    /// `[T][max(D, Q)]` normalized input / projection output.
    let xn: UnsafeMutablePointer<Float>
    /// `[T][Q + 2·KV]`: each row is a token's q, then k, then v (one stacked projection).
    let qkv: UnsafeMutablePointer<Float>
    /// `[T][Q]` attention output (heads concatenated).
    let att: UnsafeMutablePointer<Float>
    /// `[T][2·F]`: each row is a token's gate, then up.
    let gateUp: UnsafeMutablePointer<Float>
    /// `[T][F]` silu(gate) · up.
    let hidden: UnsafeMutablePointer<Float>
    /// `[R][D]` final-normed rows whose logits are wanted, and `[R][V]` logits.
    let logitInput: UnsafeMutablePointer<Float>
    let logits: UnsafeMutablePointer<Float>
    /// `[C][KV]` one prefill sequence's K and V gathered from its blocks.
    let gatheredK: UnsafeMutablePointer<Float>
    let gatheredV: UnsafeMutablePointer<Float>
    /// Per thread `[group·tile][C]` attention scores (or `[C]` for decode).
    let scores: [UnsafeMutablePointer<Float>]
    /// Per thread `[group·tile][headDim]` stacked queries / outputs of one KV head's group.
    let headStack: [UnsafeMutablePointer<Float>]

    private var all: [UnsafeMutableRawPointer] = []

    init(configuration c: TransformerConfiguration, maxTokens: Int, maxLogitRows: Int, maxContext: Int, threads: Int) {
        self.maxTokens = maxTokens
        self.maxLogitRows = maxLogitRows
        self.maxContext = maxContext
        var all: [UnsafeMutableRawPointer] = []
        // 64-byte aligned: the SIMD kernels' loads then never split a cache line.
        func alloc(_ n: Int) -> UnsafeMutablePointer<Float> {
            let raw = UnsafeMutableRawPointer.allocate(byteCount: max(n, 16) * 4, alignment: 64)
            all.append(raw)
            let p = raw.bindMemory(to: Float.self, capacity: max(n, 16))
            p.initialize(repeating: 0, count: max(n, 16))
            return p
        }
        let t = maxTokens
        x = alloc(t * c.hiddenSize)
        xn = alloc(t * max(c.hiddenSize, c.qDim))
        qkv = alloc(t * (c.qDim + 2 * c.kvDim))
        att = alloc(t * c.qDim)
        gateUp = alloc(t * 2 * c.intermediateSize)
        hidden = alloc(t * c.intermediateSize)
        logitInput = alloc(maxLogitRows * c.hiddenSize)
        logits = alloc(maxLogitRows * c.vocabularySize)
        gatheredK = alloc(maxContext * c.kvDim)
        gatheredV = alloc(maxContext * c.kvDim)
        let group = c.headCount / c.kvHeadCount
        scores = (0..<threads).map { _ in alloc(group * Self.attentionTile * maxContext) }
        headStack = (0..<threads).map { _ in alloc(group * Self.attentionTile * c.headDim) }
        self.all = all
    }

    deinit { for p in all { p.deallocate() } }
}
