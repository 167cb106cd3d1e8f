import GGUF
import Kernels

/// Builds small random-weight GGUF models with a fixed seed: real files through the real
/// loader, for tests and benchmarks that must not depend on downloaded weights.
public enum SyntheticModel {
    public struct Shape: Sendable {
        public var architecture = "llama"
        public var layers = 2
        public var hidden = 64
        public var intermediate = 128
        public var heads = 4
        public var kvHeads = 2
        public var contextLength = 512
        /// Format of the projection matrices (the embedding is Q8_0 like the default model's).
        /// The K-quants need `hidden` and `intermediate` to be multiples of 256.
        public var weightType: GGMLType = .q4_1
        public var tiedEmbedding = true
        public var seed: UInt64 = 42
        /// `tokenizer.chat_template` (nil: none); the default is a plain ChatML template.
        public var chatTemplate: String? = SyntheticModel.chatMLTemplate
        /// Control tokens appended after the rest of the vocabulary (e.g. another chat format's).
        public var extraSpecialTokens: [String] = []
        /// `<arch>.`-prefixed metadata added to the file (e.g. `rope.scaling.type`).
        public var extraMetadata: [String: GGUFValue] = [:]
        /// Written as the `rope_freqs.weight` tensor (`[headDim / 2]` F32) when set.
        public var ropeFrequencyFactors: [Float]?
        /// Gemma 3 only: `attention.sliding_window` (its layers' norms and q/k norms are written too).
        public var slidingWindow = 8
        /// Format of `attn_v` and `ffn_down` when it should differ from `weightType` (K-quant mixes).
        public var mixedType: GGMLType?
        public init() {}
    }

    /// Byte-level vocabulary: the 256 byte tokens, a few merges, and ChatML special tokens.
    public static let specialTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    public static let chatMLTemplate =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    static let merges = ["Ġ t", "Ġ a", "h e", "i n", "r e", "o n", "Ġt he", "e r", "Ġ s", "a t"]

    /// GPT-2's printable stand-ins for bytes.
    static func byteTokens() -> [String] {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        let set = Set(printable)
        var extra = 0
        var map = [Int](repeating: 0, count: 256)
        for b in 0..<256 {
            if set.contains(b) { map[b] = b } else { map[b] = 256 + extra; extra += 1 }
        }
        printable.removeAll()
        return map.map { String(UnicodeScalar(UInt32($0))!) }
    }

    /// The GGUF bytes of a random model of `shape`.
    public static func gguf(_ shape: Shape = Shape()) -> [UInt8] {
        precondition(shape.hidden % shape.weightType.blockSize == 0 && shape.intermediate % shape.weightType.blockSize == 0,
                     "SyntheticModel: \(shape.weightType) rows need hidden and intermediate sizes that are multiples of \(shape.weightType.blockSize)")
        var rng = SplitMix64(seed: shape.seed)
        let tokens = specialTokens + byteTokens() + merges.map { $0.replacingOccurrences(of: " ", with: "") }
            + shape.extraSpecialTokens
        var types = [Int](repeating: 1, count: tokens.count)
        for i in specialTokens.indices { types[i] = 3 }
        for i in tokens.count - shape.extraSpecialTokens.count..<tokens.count { types[i] = 3 }
        let vocab = tokens.count
        let headDim = shape.hidden / shape.heads
        let a = shape.architecture + "."
        var w = GGUFWriter()
        w.set("general.architecture", .string(shape.architecture))
        w.set("general.name", .string("synthetic-\(shape.architecture)"))
        w.set(a + "block_count", .uint32(UInt32(shape.layers)))
        w.set(a + "context_length", .uint32(UInt32(shape.contextLength)))
        w.set(a + "embedding_length", .uint32(UInt32(shape.hidden)))
        w.set(a + "feed_forward_length", .uint32(UInt32(shape.intermediate)))
        w.set(a + "attention.head_count", .uint32(UInt32(shape.heads)))
        w.set(a + "attention.head_count_kv", .uint32(UInt32(shape.kvHeads)))
        w.set(a + "rope.freq_base", .float32(10_000))
        w.set(a + "attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.set(a + "rope.dimension_count", .uint32(UInt32(headDim)))
        let gemma = shape.architecture == "gemma3"
        if gemma {
            w.set(a + "attention.key_length", .uint32(UInt32(headDim)))
            w.set(a + "attention.value_length", .uint32(UInt32(headDim)))
            w.set(a + "attention.sliding_window", .uint32(UInt32(shape.slidingWindow)))
        }
        w.set("tokenizer.ggml.model", .string("gpt2"))
        w.set("tokenizer.ggml.pre", .string("smollm"))
        w.set("tokenizer.ggml.tokens", .array(tokens.map { .string($0) }))
        w.set("tokenizer.ggml.token_type", .array(types.map { .int32(Int32($0)) }))
        w.set("tokenizer.ggml.merges", .array(merges.map { .string($0) }))
        w.set("tokenizer.ggml.bos_token_id", .uint32(1))
        w.set("tokenizer.ggml.eos_token_id", .uint32(2))
        w.set("tokenizer.ggml.add_bos_token", .bool(false))
        if let template = shape.chatTemplate { w.set("tokenizer.chat_template", .string(template)) }
        for (key, value) in shape.extraMetadata.sorted(by: { $0.key < $1.key }) { w.set(a + key, value) }
        if let factors = shape.ropeFrequencyFactors { w.addTensor(name: "rope_freqs.weight", dimensions: [factors.count], floats: factors) }

        func random(_ n: Int, scale: Float) -> [Float] { (0..<n).map { _ in rng.uniform() * 2 * scale - scale } }
        func matrix(_ name: String, rows: Int, cols: Int, type: GGMLType) {
            let scale = 1 / Float(cols).squareRoot() * 1.7
            w.addTensor(name: name, type: type, dimensions: [cols, rows], data: quantize(random(rows * cols, scale: scale), to: type))
        }
        func norm(_ name: String, _ n: Int) {
            w.addTensor(name: name, dimensions: [n], floats: (0..<n).map { _ in 0.8 + 0.4 * rng.uniform() })
        }
        matrix("token_embd.weight", rows: vocab, cols: shape.hidden, type: .q8_0)
        norm("output_norm.weight", shape.hidden)
        if !shape.tiedEmbedding { matrix("output.weight", rows: vocab, cols: shape.hidden, type: shape.weightType) }
        let q = shape.heads * headDim, kv = shape.kvHeads * headDim
        for l in 0..<shape.layers {
            let p = "blk.\(l)."
            norm(p + "attn_norm.weight", shape.hidden)
            norm(p + "ffn_norm.weight", shape.hidden)
            matrix(p + "attn_q.weight", rows: q, cols: shape.hidden, type: shape.weightType)
            matrix(p + "attn_k.weight", rows: kv, cols: shape.hidden, type: shape.weightType)
            matrix(p + "attn_v.weight", rows: kv, cols: shape.hidden, type: shape.mixedType ?? shape.weightType)
            matrix(p + "attn_output.weight", rows: shape.hidden, cols: q, type: shape.weightType)
            matrix(p + "ffn_gate.weight", rows: shape.intermediate, cols: shape.hidden, type: shape.weightType)
            matrix(p + "ffn_up.weight", rows: shape.intermediate, cols: shape.hidden, type: shape.weightType)
            matrix(p + "ffn_down.weight", rows: shape.hidden, cols: shape.intermediate, type: shape.mixedType ?? shape.weightType)
            if gemma {
                norm(p + "post_attention_norm.weight", shape.hidden)
                norm(p + "post_ffw_norm.weight", shape.hidden)
                norm(p + "attn_q_norm.weight", headDim)
                norm(p + "attn_k_norm.weight", headDim)
            }
            if shape.architecture == "qwen2" {
                for (name, n) in [("attn_q.bias", q), ("attn_k.bias", kv), ("attn_v.bias", kv)] {
                    w.addTensor(name: p + name, dimensions: [n], floats: random(n, scale: 0.5))
                }
            }
        }
        return w.bytes()
    }
}
