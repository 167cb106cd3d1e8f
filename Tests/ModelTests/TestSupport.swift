import Engine
import Foundation
import GGUF
import Kernels
import Model

/// The real default model, if installed (`scripts/setup.sh`), else nil.
enum RealModel {
    static let path: String? = DefaultModel.locate().flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }

    static var available: Bool { path != nil }

    /// Loaded once per test process: the suites share it.
    nonisolated(unsafe) static let shared: Transformer? = {
        guard let path else { return nil }
        let file = try! GGUFFile(path: path)
        BLAS.setThreads(1)
        var options = ModelOptions()
        options.maxContext = 1024
        return try! Transformer(file: file, options: options, pool: ThreadPool(threadCount: 2))
    }()
}

/// KV blocks in a plain buffer, handed out in order: enough for model tests without a MemPool.
final class TestKVCache {
    let layout: KVCacheLayout
    let blockCount: Int
    let storage: UnsafeMutablePointer<Float>
    private var next: Int32 = 0

    init(layout: KVCacheLayout, blocks: Int) {
        self.layout = layout
        blockCount = blocks
        storage = .allocate(capacity: blocks * layout.blockFloats)
        storage.initialize(repeating: .nan, count: blocks * layout.blockFloats)
    }

    deinit { storage.deallocate() }

    var view: KVCacheView { KVCacheView(base: storage, blockCount: blockCount, layout: layout) }

    /// `n` fresh blocks; a shuffled order if `scattered`, so tests see non-contiguous tables.
    func allocate(_ n: Int, scattered: Bool = false) -> [Int32] {
        var ids = (0..<n).map { next + Int32($0) }
        next += Int32(n)
        precondition(Int(next) <= blockCount)
        if scattered { ids.reverse() }
        return ids
    }
}

/// Runs prompts through the model: prefill at once, then greedy decode one token at a time.
struct Runner {
    let model: Transformer
    let cache: TestKVCache

    init(model: Transformer, blocks: Int = 256) {
        self.model = model
        cache = TestKVCache(layout: model.kvLayout, blocks: blocks)
    }

    /// Logits after the last prompt token, and `greedy` greedily generated tokens.
    func run(_ prompt: [Int32], greedy: Int, chunk: Int? = nil, scattered: Bool = false) throws -> (logits: [Float], tokens: [Int32]) {
        let total = prompt.count + greedy
        let table = cache.allocate(model.kvLayout.blocks(forTokens: total), scattered: scattered)
        var pos = 0
        var logits: [Float] = []
        let step = chunk ?? prompt.count
        while pos < prompt.count {
            let end = min(prompt.count, pos + step)
            var batch = ForwardBatch()
            batch.add(tokens: prompt[pos..<end], startPosition: pos, blockTable: table, wantsLogits: end == prompt.count)
            let out = try model.forward(batch, kv: cache.view)
            if end == prompt.count { logits = Array(out.row(0)) }
            pos = end
        }
        var tokens: [Int32] = []
        var last = logits
        for _ in 0..<greedy {
            let t = Int32(last.indices.max { last[$0] < last[$1] || (last[$0] == last[$1] && $0 > $1) }!)
            tokens.append(t)
            var batch = ForwardBatch()
            batch.add(tokens: [t], startPosition: pos, blockTable: table, wantsLogits: true)
            last = Array(try model.forward(batch, kv: cache.view).row(0))
            pos += 1
        }
        return (logits, tokens)
    }
}
