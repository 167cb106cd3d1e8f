import GGUF

extension BPETokenizer {
    /// Builds the tokenizer stored in a GGUF file's `tokenizer.ggml.*` metadata.
    /// - Throws: `.unsupportedModel` unless `tokenizer.ggml.model` is "gpt2" (byte-level BPE) or
    ///   "llama" (SentencePiece-style BPE with scores), `.unknownPreTokenizer` for a
    ///   `tokenizer.ggml.pre` without a scanner here (missing or "default" means GPT-2),
    ///   `.missingMetadata` when tokens, merges (gpt2) or scores (llama) are absent.
    public convenience init(gguf file: GGUFFile) throws(TokenizerError) {
        let modelKey = "tokenizer.ggml.model"
        guard let model = file.string(modelKey) else { throw .missingMetadata(modelKey) }
        if model == "llama" {
            try self.init(sentencePieceFile: file)
            return
        }
        guard model == "gpt2" else { throw .unsupportedModel(model) }
        let preTokenizer = try PreTokenizer(ggufName: file.string("tokenizer.ggml.pre"))

        let tokensKey = "tokenizer.ggml.tokens", mergesKey = "tokenizer.ggml.merges"
        guard let tokens = file.stringArray(tokensKey) else { throw .missingMetadata(tokensKey) }
        guard let merges = file.stringArray(mergesKey) else { throw .missingMetadata(mergesKey) }
        let typesKey = "tokenizer.ggml.token_type"
        var types: [Int] = []
        if let value = file.metadata[typesKey] {
            guard let ints = value.intArray else { throw .missingMetadata(typesKey) }
            types = ints
        }
        // llama.cpp prepends BOS for Llama 3 unless the file says otherwise.
        let addBOS = file.bool("tokenizer.ggml.add_bos_token") ?? (preTokenizer == .llama3)
        try self.init(tokens: tokens, merges: merges, tokenTypes: types, preTokenizer: preTokenizer,
                      bosID: file.int("tokenizer.ggml.bos_token_id"), eosID: file.int("tokenizer.ggml.eos_token_id"),
                      addBOS: addBOS)
    }
}

extension BPETokenizer {
    /// A SentencePiece vocabulary (`tokenizer.ggml.model` "llama"): tokens, scores and types.
    private convenience init(sentencePieceFile file: GGUFFile) throws(TokenizerError) {
        let tokensKey = "tokenizer.ggml.tokens", scoresKey = "tokenizer.ggml.scores", typesKey = "tokenizer.ggml.token_type"
        guard let tokens = file.stringArray(tokensKey) else { throw .missingMetadata(tokensKey) }
        guard let scoreValues = file.metadata[scoresKey]?.array else { throw .missingMetadata(scoresKey) }
        var scores: [Float] = []
        scores.reserveCapacity(scoreValues.count)
        for v in scoreValues {
            guard let d = v.double else { throw .missingMetadata(scoresKey) }
            scores.append(Float(d))
        }
        var types: [Int] = []
        if let value = file.metadata[typesKey] {
            guard let ints = value.intArray else { throw .missingMetadata(typesKey) }
            types = ints
        }
        try self.init(tokens: tokens, merges: [], tokenTypes: types, preTokenizer: .gpt2,
                      bosID: file.int("tokenizer.ggml.bos_token_id"), eosID: file.int("tokenizer.ggml.eos_token_id"),
                      addBOS: file.bool("tokenizer.ggml.add_bos_token") ?? true,
                      sentencePiece: SentencePieceModel(scores: scores,
                                                        addSpacePrefix: file.bool("tokenizer.ggml.add_space_prefix") ?? true))
    }
}

extension ChatTemplate {
    /// The chat template named by a GGUF file's `tokenizer.chat_template` (ChatML when absent
    /// or unknown, see `fallbackNotice`).
    public init(gguf file: GGUFFile, tokenizer: BPETokenizer) {
        self.init(gguf: file.string("tokenizer.chat_template"), tokenizer: tokenizer)
    }
}
