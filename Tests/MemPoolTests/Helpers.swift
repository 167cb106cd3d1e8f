import Foundation
import Kernels
import MemPool

/// The project's seeded generator, so randomized tests replay exactly.
typealias SeededRNG = SplitMix64

/// A pool for tests: 4-token blocks of 16 bytes unless told otherwise.
func makePool(hot: Int, cold: Int = 0, blockTokens: Int = 4, blockBytes: Int = 16,
              file: String? = nil) throws -> MemPool {
    try MemPool(MemPoolConfig(blockTokens: blockTokens, blockBytes: blockBytes, hotBlocks: hot,
                              coldBlocks: cold, coldFilePath: file))
}

/// `blocks` whole blocks of distinct tokens starting at `start`.
func prompt(_ start: Int32, blocks: Int, blockTokens: Int = 4) -> [Int32] {
    (0..<Int32(blocks * blockTokens)).map { start + $0 }
}

extension MemPool {
    /// Allocates and indexes a prompt's whole blocks, then releases them: they end up cached.
    @discardableResult
    func cache(_ tokens: [Int32]) -> [BlockID] {
        guard let blocks = allocate(tokens.count / blockTokens) else { return [] }
        insert(tokens: tokens, blocks: blocks)
        release(blocks)
        return blocks
    }

    /// Whole blocks of `tokens` that are cached, read from a snapshot: unlike a match, this does
    /// not touch the LRU order.
    func cachedBlocks(of tokens: [Int32]) -> Int {
        snapshot().cachedPrefixes.map { p in
            var i = 0
            while i < p.count && i < tokens.count && p[i] == tokens[i] { i += 1 }
            return i / blockTokens
        }.max() ?? 0
    }

    /// Fills a block with a byte pattern.
    func fill(_ id: BlockID, with byte: UInt8) throws {
        let buf = [UInt8](repeating: byte, count: blockBytes)
        try buf.withUnsafeBytes { try writeBlock(id, from: $0.baseAddress!) }
    }

    /// A block's bytes, from either tier.
    func bytes(of id: BlockID) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: blockBytes)
        try buf.withUnsafeMutableBytes { try readBlock(id, into: $0.baseAddress!) }
        return buf
    }
}

/// Collects events in order.
final class EventLog {
    var events: [MemPoolEvent] = []
    init(_ pool: MemPool) { pool.subscribe { [unowned self] in self.events.append($0) } }
}

func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory
        .appendingPathComponent("mempool-\(name)-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))")
        .path
}
