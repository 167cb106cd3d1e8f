import GGUF

/// Qwen2 family: Llama's block with biases on the Q, K and V projections, NeoX-style RoPE
/// (first half of a head rotated with the second), usually an untied output head.
public enum Qwen2: ModelArchitecture {
    public static let names = ["qwen2"]

    public static func configuration(from file: GGUFFile) throws(ModelError) -> TransformerConfiguration {
        try ArchitectureMetadata(file: file, prefix: "qwen2.")
            .commonConfiguration(architecture: "qwen2", ropeStyle: .halves, attentionBias: true)
    }

    /// `LlamaBlock` loads the `attn_q/k/v.bias` tensors because the configuration has `attentionBias`.
    public static func blocks(_ loader: TensorLoader, _ configuration: TransformerConfiguration) throws(ModelError) -> [any DecoderBlock] {
        try LlamaBlock.layers(loader, configuration)
    }
}
