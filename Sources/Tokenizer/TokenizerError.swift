/// Errors raised while building a tokenizer or a chat template.
public enum TokenizerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The vocabulary has no tokens.
    case emptyVocabulary
    /// `token_type` is present but its length differs from the token list.
    case tokenTypeCountMismatch(tokens: Int, types: Int)
    /// A merge rule is not of the form `"left right"`.
    case malformedMerge(index: Int, rule: String)
    /// A special-token id (bos, eos, ...) lies outside the vocabulary.
    case specialTokenOutOfRange(name: String, id: Int)
    /// `tokenizer.ggml.model` names a tokenizer this module does not implement.
    case unsupportedModel(String)
    /// `tokenizer.ggml.pre` names a pre-tokenizer this module does not implement.
    case unknownPreTokenizer(String)
    /// Required GGUF metadata is absent or has the wrong type.
    case missingMetadata(String)
    /// The chat format needs a token the vocabulary lacks.
    case missingChatToken(String)

    public var description: String {
        switch self {
        case .emptyVocabulary:
            return "tokenizer vocabulary is empty"
        case let .tokenTypeCountMismatch(tokens, types):
            return "tokenizer has \(tokens) tokens but \(types) token types"
        case let .malformedMerge(index, rule):
            return "merge rule #\(index) is not \"left right\": \(rule.debugDescription)"
        case let .specialTokenOutOfRange(name, id):
            return "special token \(name) id \(id) is outside the vocabulary"
        case let .unsupportedModel(name):
            return "unsupported tokenizer model \(name.debugDescription) (implemented: byte-level BPE \"gpt2\", SentencePiece-style BPE \"llama\")"
        case let .unknownPreTokenizer(name):
            return "unknown pre-tokenizer \(name.debugDescription) (supported: \(PreTokenizer.supportedNames.joined(separator: ", ")))"
        case let .missingMetadata(key):
            return "GGUF metadata \(key) is missing or has the wrong type"
        case let .missingChatToken(token):
            return "chat template needs token \(token) which is not in the vocabulary"
        }
    }
}
