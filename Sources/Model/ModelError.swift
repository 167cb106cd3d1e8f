import GGUF

/// Why a model could not be loaded or run.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case unsupportedArchitecture(String, supported: [String])
    case missingMetadata(String)
    case missingTensor(String)
    case tensorShape(name: String, expected: [Int], found: [Int])
    case unsupportedTensorType(name: String, type: String)
    case invalidConfiguration(String)
    case file(GGUFError)
    case batchTooLarge(tokens: Int, capacity: Int)
    case contextOverflow(position: Int, contextLength: Int)
    case invalidToken(Int32, vocabularySize: Int)
    /// `rope.scaling.type` names a scheme the engine does not compute (YaRN, LongRoPE, ...).
    case unsupportedRoPEScaling(String)

    public var description: String {
        switch self {
        case let .unsupportedArchitecture(name, supported):
            "unsupported model architecture '\(name)' (supported: \(supported.joined(separator: ", ")))"
        case let .missingMetadata(key): "model file lacks metadata key '\(key)'"
        case let .missingTensor(name): "model file lacks tensor '\(name)'"
        case let .tensorShape(name, expected, found):
            "tensor '\(name)' has shape \(found), expected \(expected)"
        case let .unsupportedTensorType(name, type): "tensor '\(name)' has unsupported type \(type)"
        case let .invalidConfiguration(what): "invalid model configuration: \(what)"
        case let .file(error): "model file: \(error)"
        case let .batchTooLarge(tokens, capacity): "batch of \(tokens) tokens exceeds capacity \(capacity)"
        case let .contextOverflow(position, contextLength):
            "position \(position) exceeds the context length \(contextLength)"
        case let .invalidToken(id, vocab): "token id \(id) is outside the vocabulary (0..<\(vocab))"
        case let .unsupportedRoPEScaling(type):
            "unsupported RoPE scaling '\(type)' (supported: none, linear, llama3 and rope_freqs factors)"
        }
    }
}
