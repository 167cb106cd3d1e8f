import Foundation
import GGUF
import Kernels
import MemPool
import Model
import Tokenizer

/// Everything loaded from one model file: weights, tokenizer, chat template, and the thread
/// pool the forward pass runs on.
public final class LoadedModel: @unchecked Sendable {
    public let file: GGUFFile
    public let transformer: Transformer
    public let tokenizer: BPETokenizer
    public let chatTemplate: ChatTemplate
    public let pool: ThreadPool
    /// Model name for APIs: the file name without extension.
    public let name: String
    /// What a front end needs of this model (tokenizer, template, names, context).
    public var served: ServedModel {
        ServedModel(name: name, tokenizer: tokenizer, chatTemplate: chatTemplate, maxContext: transformer.maxContext)
    }

    public convenience init(path: String, options: ModelOptions = ModelOptions(),
                            threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        let file: GGUFFile
        do { file = try GGUFFile(path: path) } catch { throw ModelError.file(error) }
        try self.init(file: file, name: ((path as NSString).lastPathComponent as NSString).deletingPathExtension,
                      options: options, threads: threads)
    }

    /// Loads from an open file (e.g. a synthetic model built in memory).
    public init(file: GGUFFile, name: String, options: ModelOptions = ModelOptions(),
                threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        self.name = name
        self.file = file
        BLAS.setThreads(1)
        pool = ThreadPool(threadCount: threads)
        transformer = try Transformer(file: file, options: options, pool: pool)
        tokenizer = try BPETokenizer(gguf: file)
        chatTemplate = ChatTemplate(gguf: file.metadata["tokenizer.chat_template"]?.string, tokenizer: tokenizer)
    }

    /// Shares everything read-only (weights, tokenizer), with its own thread pool and forward-pass
    /// scratch: a second instance in the same process (e.g. prefill and decode).
    private init(sharing other: LoadedModel, threads: Int) {
        name = other.name
        file = other.file
        tokenizer = other.tokenizer
        chatTemplate = other.chatTemplate
        pool = ThreadPool(threadCount: threads)
        transformer = Transformer(configuration: other.transformer.configuration, weights: other.transformer.weights,
                                  options: other.transformer.options, pool: pool,
                                  blockTokens: other.transformer.kvLayout.blockTokens)
    }

    /// Another instance of this model for a second engine thread (weights shared, not copied).
    public func sibling(threads: Int) -> LoadedModel { LoadedModel(sharing: self, threads: threads) }

    /// A MemPool whose hot tier holds `blocks` KV blocks of this model's layout. With a
    /// `peerShare` (an instance among peers) it has a peer tier: that share of its blocks may
    /// keep peers' prefixes, and a small staging ring keeps its own evicted blocks for spills.
    public func makeMemPool(hotBlocks: Int, coldBlocks: Int = 0, peerShare: Double = 0) throws(MemPoolError) -> MemPool {
        try MemPool(MemPoolConfig(blockTokens: transformer.kvLayout.blockTokens,
                                  blockBytes: transformer.kvLayout.blockBytes,
                                  hotBlocks: hotBlocks, coldBlocks: coldBlocks, peerShare: peerShare,
                                  spillStagingBlocks: peerShare > 0 ? Self.spillStagingBlocks(hotBlocks + coldBlocks) : 0))
    }

    /// Staging for spills: a sixteenth of the pool, between 16 and 64 blocks (a burst of
    /// evictions beyond it, before the router's orders arrive, loses its oldest blocks, as
    /// without a peer tier).
    static func spillStagingBlocks(_ total: Int) -> Int { min(64, max(16, total / 16)) }

    /// Hot-tier blocks that fit in `megabytes` of KV memory.
    public func blocks(forMegabytes megabytes: Int) -> Int {
        max(1, megabytes * 1_048_576 / transformer.kvLayout.blockBytes)
    }
}
