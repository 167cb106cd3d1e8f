import GGUF

/// Llama family (Llama 2/3, SmolLM, Mistral-style GQA): RMSNorm, RoPE on adjacent pairs,
/// SwiGLU MLP, no biases, optionally tied embedding.
public enum Llama: ModelArchitecture {
    public static let names = ["llama"]

    public static func configuration(from file: GGUFFile) throws(ModelError) -> TransformerConfiguration {
        try ArchitectureMetadata(file: file, prefix: "llama.")
            .commonConfiguration(architecture: "llama", ropeStyle: .adjacentPairs, attentionBias: false)
    }
}
