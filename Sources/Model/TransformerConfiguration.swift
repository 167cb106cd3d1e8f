import Kernels

/// How RoPE pairs up the dimensions of a head.
public enum RoPEStyle: Sendable, Equatable {
    /// Adjacent pairs (0,1), (2,3), ... — ggml's "normal" mode, used by llama-arch GGUF weights
    /// (the converter permutes Q/K so that this layout is right).
    case adjacentPairs
    /// First half with second half (i, i + d/2) — ggml's NeoX mode (Qwen2, GPT-NeoX).
    case halves
}

/// Shape and options of a decoder-only transformer, decoded from a model file's metadata by
/// the architecture that owns it (see `ModelRegistry`).
public struct TransformerConfiguration: Sendable, Equatable {
    public var architecture: String
    public var layerCount: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var vocabularySize: Int
    public var contextLength: Int
    public var ropeBase: Float
    public var ropeStyle: RoPEStyle
    /// Context extension applied to the RoPE angles (none unless the file asks).
    public var ropeScaling: RoPEScaling = .none
    /// Keys a sliding-window layer attends to, the query's own included (0: every layer is global).
    public var slidingWindow: Int = 0
    /// Every `slidingWindowPattern`-th layer (index `k·pattern - 1`) is global, the rest slide.
    public var slidingWindowPattern: Int = 0
    /// RoPE base of the sliding-window layers (unscaled), when it differs from `ropeBase`.
    public var localRopeBase: Float?
    /// Attention logits' scale; nil means 1/√headDim.
    public var attentionScale: Float?
    /// The embedding rows are multiplied by this (Gemma: √hidden); nil means 1.
    public var embeddingScale: Float?

    /// Whether `layer` attends through the sliding window.
    @inline(__always)
    public func isSlidingWindowLayer(_ layer: Int) -> Bool {
        slidingWindow > 0 && (slidingWindowPattern == 0 || layer % slidingWindowPattern < slidingWindowPattern - 1)
    }
    public var rmsNormEpsilon: Float
    /// Q, K and V projections carry biases (Qwen2).
    public var attentionBias: Bool
    /// The output head reuses the token embedding matrix.
    public var tiedEmbedding: Bool

    public var qDim: Int { headCount * headDim }
    public var kvDim: Int { kvHeadCount * headDim }

    public init(architecture: String, layerCount: Int, hiddenSize: Int, intermediateSize: Int,
                headCount: Int, kvHeadCount: Int, headDim: Int, vocabularySize: Int,
                contextLength: Int, ropeBase: Float, ropeStyle: RoPEStyle, rmsNormEpsilon: Float,
                attentionBias: Bool, tiedEmbedding: Bool) {
        self.architecture = architecture
        self.layerCount = layerCount
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim
        self.vocabularySize = vocabularySize
        self.contextLength = contextLength
        self.ropeBase = ropeBase
        self.ropeStyle = ropeStyle
        self.rmsNormEpsilon = rmsNormEpsilon
        self.attentionBias = attentionBias
        self.tiedEmbedding = tiedEmbedding
    }

    /// Checks the invariants the forward pass relies on.
    public func validate() throws(ModelError) {
        func need(_ ok: Bool, _ what: String) throws(ModelError) {
            if !ok { throw .invalidConfiguration(what) }
        }
        try need(layerCount > 0 && layerCount <= 1024, "layer count \(layerCount)")
        try need(hiddenSize > 0 && intermediateSize > 0, "hidden size \(hiddenSize) / FFN size \(intermediateSize)")
        try need(headCount > 0 && kvHeadCount > 0 && headCount % kvHeadCount == 0,
                 "head count \(headCount) must be a positive multiple of KV head count \(kvHeadCount)")
        try need(headDim > 0 && headDim % 2 == 0 && headDim <= 512, "head dimension \(headDim)")
        try need(vocabularySize > 0, "vocabulary size \(vocabularySize)")
        try need(contextLength > 0, "context length \(contextLength)")
        try need(ropeBase > 0 && rmsNormEpsilon > 0, "rope base \(ropeBase) / rms epsilon \(rmsNormEpsilon)")
        try need(ropeScaling.linearFactor.isFinite && ropeScaling.linearFactor > 0, "rope scaling factor \(ropeScaling.linearFactor)")
        try need(slidingWindow >= 0 && slidingWindowPattern >= 0, "sliding window \(slidingWindow) / pattern \(slidingWindowPattern)")
        try need((localRopeBase ?? 1) > 0 && (attentionScale ?? 1) > 0 && (embeddingScale ?? 1) > 0,
                 "local rope base / attention scale / embedding scale must be positive")
        if let factors = ropeScaling.frequencyFactors {
            try need(factors.count == headDim / 2, "\(factors.count) rope frequency factors for head dimension \(headDim)")
        }
    }
}
