import Foundation
import GGUF
import Tokenizer

/// What a front end needs to know of the model it serves: names, tokenizer, chat template and
/// limits. Loading one reads only the GGUF's metadata (no weights are touched), so a router
/// can tokenize for instances that hold the weights.
public struct ServedModel: Sendable {
    /// The name `/v1/models` lists first; requests may name it or one of `aliases`.
    public var name: String
    /// Further names clients may send (`serve --served-model-name NAME,ALIAS...`).
    public var aliases: [String]
    public let tokenizer: BPETokenizer
    public let chatTemplate: ChatTemplate
    /// Most tokens (prompt plus completion) a sequence may hold.
    public var maxContext: Int

    public init(name: String, aliases: [String] = [], tokenizer: BPETokenizer, chatTemplate: ChatTemplate, maxContext: Int) {
        self.name = name
        self.aliases = aliases
        self.tokenizer = tokenizer
        self.chatTemplate = chatTemplate
        self.maxContext = maxContext
    }

    /// Reads tokenizer, template and context length from an open model file.
    /// - Parameter maxContext: a limit below the file's own context length, if any.
    public init(file: GGUFFile, name: String, maxContext: Int? = nil) throws {
        let tokenizer = try BPETokenizer(gguf: file)
        let template = ChatTemplate(gguf: file.metadata["tokenizer.chat_template"]?.string, tokenizer: tokenizer)
        let arch = file.metadata["general.architecture"]?.string ?? ""
        let trained = file.metadata["\(arch).context_length"]?.int ?? 2048
        self.init(name: name, tokenizer: tokenizer, chatTemplate: template,
                  maxContext: maxContext.map { min($0, trained) } ?? trained)
    }

    /// Opens `path` for its metadata; the name is the file name without extension.
    public init(path: String, maxContext: Int? = nil) throws {
        let file = try GGUFFile(path: path)
        try self.init(file: file, name: ((path as NSString).lastPathComponent as NSString).deletingPathExtension,
                      maxContext: maxContext)
    }

    /// Every name requests may use.
    public var names: [String] { [name] + aliases }

    /// This model under other names: the first replaces `name`, the rest become aliases.
    public func renamed(_ names: [String]) -> ServedModel {
        guard let first = names.first else { return self }
        var m = self
        m.name = first
        m.aliases = Array(names.dropFirst())
        return m
    }
}
