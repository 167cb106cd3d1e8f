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
    /// `[T][Q]`, `[T][KV]`, `[T][KV]`.
    let q: UnsafeMutablePointer<Float>
    let k: UnsafeMutablePointer<Float>
    let v: UnsafeMutablePointer<Float>
    /// `[T][Q]` attention output (heads concatenated).
    let att: UnsafeMutablePointer<Float>
    /// `[T][F]` each; `gate` then holds silu(gate) * up.
    let gate: UnsafeMutablePointer<Float>
    let up: UnsafeMutablePointer<Float>
    /// `[R][D]` final-normed rows whose logits are wanted, and `[R][V]` logits.
    let logitInput: UnsafeMutablePointer<Float>
    let logits: UnsafeMutablePointer<Float>
    /// `[C][KV]` one prefill sequence's K and V gathered from its blocks.
    let gatheredK: UnsafeMutablePointer<Float>
    let gatheredV: UnsafeMutablePointer<Float>
    /// Per thread `[tile][C]` attention scores.
    let scores: [UnsafeMutablePointer<Float>]

    private var all: [UnsafeMutablePointer<Float>] = []

    init(configuration c: TransformerConfiguration, maxTokens: Int, maxLogitRows: Int, maxContext: Int, threads: Int) {
        self.maxTokens = maxTokens
        self.maxLogitRows = maxLogitRows
        self.maxContext = maxContext
        var all: [UnsafeMutablePointer<Float>] = []
        func alloc(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
            p.initialize(repeating: 0, count: max(n, 1))
            all.append(p)
            return p
        }
        let t = maxTokens
        x = alloc(t * c.hiddenSize)
        xn = alloc(t * max(c.hiddenSize, c.qDim))
        q = alloc(t * c.qDim)
        k = alloc(t * c.kvDim)
        v = alloc(t * c.kvDim)
        att = alloc(t * c.qDim)
        gate = alloc(t * c.intermediateSize)
        up = alloc(t * c.intermediateSize)
        logitInput = alloc(maxLogitRows * c.hiddenSize)
        logits = alloc(maxLogitRows * c.vocabularySize)
        gatheredK = alloc(maxContext * c.kvDim)
        gatheredV = alloc(maxContext * c.kvDim)
        scores = (0..<threads).map { _ in alloc(Self.attentionTile * maxContext) }
        self.all = all
    }

    deinit { for p in all { p.deallocate() } }
}
