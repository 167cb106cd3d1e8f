import GGUF

/// One model family, in its own file: how its configuration is decoded from GGUF metadata and
/// what its blocks are (weights and forward step). `Transformer` owns what every family shares:
/// embedding, final norm and output head, the kernels, attention over the paged KV cache, scratch.
///
/// Tensor names follow GGUF's shared convention (`token_embd`, `blk.N.attn_q`, ...).
public protocol ModelArchitecture {
    /// Values of `general.architecture` this type handles.
    static var names: [String] { get }
    static func configuration(from file: GGUFFile) throws(ModelError) -> TransformerConfiguration
    /// The model's layers, in order, with their weights loaded.
    static func blocks(_ loader: TensorLoader, _ configuration: TransformerConfiguration) throws(ModelError) -> [any DecoderBlock]
}

/// One layer of an architecture: its weights and how a forward step runs through it.
///
/// A block allocates nothing in `forward`: it works in the model's preallocated scratch
/// (`Transformer.ws`) and is shared read-only by every `Transformer` over the same weights.
public protocol DecoderBlock: AnyObject, Sendable {
    /// Runs the step's tokens through the layer: the residual stream `ws.x` (`[T][hidden]`) is
    /// updated in place, and the layer's K/V of the new tokens is appended to their KV blocks.
    func forward(_ model: Transformer, _ batch: ForwardBatch, _ kv: KVCacheView, layer: Int)
    /// The layer's projections: what a decode step reads of them, and their multiply-adds.
    var projections: [Linear] { get }
}

/// Architectures by GGUF `general.architecture` name.
public enum ModelRegistry {
    public static let architectures: [any ModelArchitecture.Type] = [Llama.self, Qwen2.self, Gemma3.self]

    public static var supportedNames: [String] { architectures.flatMap { $0.names }.sorted() }

    public static func architecture(named name: String) -> (any ModelArchitecture.Type)? {
        architectures.first { $0.names.contains(name) }
    }

    /// The registered architecture `name`, or an error naming the supported ones.
    static func require(_ name: String) throws(ModelError) -> any ModelArchitecture.Type {
        guard let arch = architecture(named: name) else { throw .unsupportedArchitecture(name, supported: supportedNames) }
        return arch
    }

    /// Decodes the configuration of whatever architecture `file` declares.
    public static func configuration(from file: GGUFFile) throws(ModelError) -> TransformerConfiguration {
        guard let name = file.architecture else { throw .missingMetadata("general.architecture") }
        let config = try require(name).configuration(from: file)
        try config.validate()
        return config
    }
}

/// Reads `<arch>.<key>` metadata with errors that name the key.
struct ArchitectureMetadata {
    let file: GGUFFile
    let prefix: String

    func int(_ key: String) throws(ModelError) -> Int {
        guard let v = file.metadata[prefix + key]?.int else { throw .missingMetadata(prefix + key) }
        return v
    }
    func optionalInt(_ key: String) -> Int? { file.metadata[prefix + key]?.int }
    func float(_ key: String) throws(ModelError) -> Float {
        guard let v = file.metadata[prefix + key]?.double else { throw .missingMetadata(prefix + key) }
        return Float(v)
    }
    func optionalFloat(_ key: String) -> Float? { file.metadata[prefix + key]?.double.map(Float.init) }
    func optionalDouble(_ key: String) -> Double? { file.metadata[prefix + key]?.double }

    /// The vocabulary size: explicit key, else the tokenizer's token list, else the embedding's rows.
    func vocabularySize() throws(ModelError) -> Int {
        if let v = optionalInt("vocab_size") { return v }
        if let tokens = file.metadata["tokenizer.ggml.tokens"]?.array { return tokens.count }
        if let embd = file.tensor(named: "token_embd.weight"), embd.dimensions.count == 2 { return embd.dimensions[1] }
        throw .missingMetadata(prefix + "vocab_size")
    }

    /// The fields every Llama-like architecture shares.
    func commonConfiguration(architecture: String, ropeStyle: RoPEStyle, attentionBias: Bool) throws(ModelError) -> TransformerConfiguration {
        let hidden = try int("embedding_length")
        let heads = try int("attention.head_count")
        let headDim = optionalInt("attention.key_length") ?? optionalInt("rope.dimension_count") ?? (heads > 0 ? hidden / heads : 0)
        let ropeBase = optionalFloat("rope.freq_base") ?? 10_000
        var config = TransformerConfiguration(
            architecture: architecture,
            layerCount: try int("block_count"),
            hiddenSize: hidden,
            intermediateSize: try int("feed_forward_length"),
            headCount: heads,
            kvHeadCount: optionalInt("attention.head_count_kv") ?? heads,
            headDim: headDim,
            vocabularySize: try vocabularySize(),
            contextLength: optionalInt("context_length") ?? 2048,
            ropeBase: ropeBase,
            ropeStyle: ropeStyle,
            rmsNormEpsilon: try float("attention.layer_norm_rms_epsilon"),
            attentionBias: attentionBias,
            tiedEmbedding: file.tensor(named: "output.weight") == nil)
        config.ropeScaling = try ropeScaling(base: Double(ropeBase), headDim: headDim)
        return config
    }
}
