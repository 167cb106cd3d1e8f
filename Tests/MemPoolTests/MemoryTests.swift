import Foundation
import MemPool
import Testing

@Suite("Memory: allocation, reference counts, eviction")
struct MemoryTests {
    @Test func configurationIsValidated() throws {
        #expect(throws: MemPoolError.self) { try makePool(hot: 0) }
        #expect(throws: MemPoolError.self) { try makePool(hot: 4, blockTokens: 0) }
        #expect(throws: MemPoolError.self) { try makePool(hot: 4, blockBytes: 0) }
        let bytes = MemPoolConfig(blockBytes: 1000, hotBytes: 10_500, coldBytes: 2_999)
        #expect(bytes.hotBlocks == 10 && bytes.coldBlocks == 2 && bytes.blockTokens == 16)
        let pool = try MemPool(bytes)
        #expect(Int(bitPattern: pool.hotBase) % 64 == 0)
        #expect(pool.blockPointer(BlockID(hot: 3)) == pool.hotBase + 3000)
        #expect(MemPoolError.invalidConfig("x").description.contains("invalid"))
    }

    @Test func allocationUntilExhaustionReturnsNil() throws {
        let pool = try makePool(hot: 8)
        let a = try #require(pool.allocate(5))
        #expect(a == (0..<5).map { BlockID(hot: $0) })
        #expect(pool.allocate(4) == nil)
        let b = try #require(pool.allocate(3))
        #expect(pool.allocate(1) == nil)
        #expect(pool.allocate(0) == [])
        #expect(pool.allocate(-1) == nil)
        #expect(pool.stats.hot.used == 8 && pool.stats.hot.free == 0)
        pool.release(a)
        pool.release(b)
        #expect(pool.stats.hot.free == 8 && pool.stats.hot.used == 0)
        try pool.validate()
    }

    @Test func referenceCounts() throws {
        let pool = try makePool(hot: 4)
        let a = try #require(pool.allocate(2))
        #expect(pool.refCount(a[0]) == 1)
        #expect(pool.retain(a))
        #expect(pool.refCount(a[0]) == 2)
        pool.release(a)
        #expect(pool.refCount(a[1]) == 1 && pool.stats.hot.used == 2)
        pool.release(a)
        #expect(pool.refCount(a[1]) == 0 && pool.stats.hot.free == 4)
        // Misuse is ignored and counted, never a crash or a double free.
        #expect(!pool.release(a))
        #expect(!pool.retain([a[0]]))
        #expect(!pool.retain([BlockID(hot: 99), BlockID(cold: 0)]))
        #expect(pool.stats.invalidCalls == 5)
        #expect(pool.stats.hot.free == 4)
        try pool.validate()
    }

    @Test func releasedCachedBlocksAreEvictedLeastRecentlyUsedFirst() throws {
        let pool = try makePool(hot: 8)
        let pa = prompt(100, blocks: 2), pb = prompt(200, blocks: 2), pc = prompt(300, blocks: 2)
        pool.cache(pa)
        pool.cache(pb)
        pool.cache(pc)
        #expect(pool.stats.hot == TierStats(capacity: 8, free: 2, used: 0, cached: 6, evictable: 6))
        // Two free blocks, then A's deeper block: the table was released tail first.
        var held = try #require(pool.allocate(3))
        #expect(pool.cachedBlocks(of: pa) == 1 && pool.stats.evictions == 1)
        held += try #require(pool.allocate(1))
        #expect(pool.cachedBlocks(of: pa) == 0 && pool.cachedBlocks(of: pb) == 2)
        // Touching B makes C the oldest.
        #expect(pool.match(pb).blocks.count == 2)
        held += try #require(pool.allocate(2))
        #expect(pool.cachedBlocks(of: pc) == 0 && pool.cachedBlocks(of: pb) == 2)
        #expect(pool.allocate(3) == nil)
        #expect(pool.cachedBlocks(of: pb) == 2, "a failed allocation evicts nothing")
        pool.release(held)
        try pool.validate()
    }

    @Test func evictionNeverTakesLockedOrPinnedBlocks() throws {
        let pool = try makePool(hot: 8)
        let pa = prompt(100, blocks: 2), pb = prompt(200, blocks: 2), pc = prompt(300, blocks: 2)
        pool.cache(pa)
        pool.cache(pb)
        pool.cache(pc)
        let locked = pool.match(pa)
        pool.lock(locked)
        #expect(pool.pin(tokens: pb) == 8)
        #expect(pool.stats.hot.evictable == 2 && pool.availableHotBlocks == 4)
        #expect(pool.allocate(5) == nil)
        let got = try #require(pool.allocate(4))
        #expect(pool.match(pa).blocks == locked.blocks)
        #expect(pool.match(pb).blocks.count == 2 && pool.match(pc).isEmpty)
        #expect(pool.allocate(1) == nil)
        // Unpinning and unlocking make them evictable again.
        pool.unlock(locked)
        #expect(pool.unpin(tokens: pb) == 8)
        #expect(pool.stats.hot.evictable == 4)
        pool.release(got)
        try pool.validate()
    }

    @Test func evictionMovesBlocksToTheColdTierWhileItHasRoom() throws {
        let pool = try makePool(hot: 4, cold: 2)
        let log = EventLog(pool)
        let pa = prompt(100, blocks: 2), pb = prompt(200, blocks: 2)
        pool.cache(pa)
        pool.cache(pb)
        let ha = PrefixHash.chain(pa, blockTokens: 4), hb = PrefixHash.chain(pb, blockTokens: 4)
        log.events.removeAll()
        _ = try #require(pool.allocate(2))
        // A went to the cold tier, deepest block first, and is still cached there.
        #expect(pool.match(pa).tiers == [.cold, .cold])
        #expect(pool.stats.demotions == 2 && pool.stats.evictions == 0)
        #expect(log.events == [.swappedOut(hashes: [ha[1], ha[0]])])
        // The cold tier is full: it gives up its oldest block to take each newer one.
        _ = try #require(pool.allocate(2))
        #expect(pool.match(pb).tiers == [.cold, .cold])
        #expect(pool.match(pa).isEmpty)
        #expect(Array(log.events.dropFirst()) == [
            .evicted(hashes: [ha[1]], tier: .cold), .swappedOut(hashes: [hb[1]]),
            .evicted(hashes: [ha[0]], tier: .cold), .swappedOut(hashes: [hb[0]]),
        ])
        #expect(pool.stats.cold == TierStats(capacity: 2, free: 0, used: 0, cached: 2, evictable: 2))
        try pool.validate()
    }

    @Test func evictionDropsWhenTheColdTierIsAllHeld() throws {
        let pool = try makePool(hot: 4, cold: 2)
        let seq = try #require(pool.allocate(2))
        let swapped = pool.swapOut(blocks: seq)
        #expect(swapped.map(\.tier) == [.cold, .cold])
        pool.cache(prompt(100, blocks: 4))
        let got = try #require(pool.allocate(4))
        #expect(pool.stats.evictions == 4 && pool.stats.demotions == 0)
        #expect(pool.refCount(swapped[0]) == 1)
        pool.release(got)
        pool.release(swapped)
        try pool.validate()
    }

    @Test func swapOutAndSwapInKeepTheBytes() throws {
        let pool = try makePool(hot: 4, cold: 4, blockBytes: 64)
        let p = prompt(1, blocks: 2)
        let blocks = try #require(pool.allocate(2))
        try pool.fill(blocks[0], with: 0xA1)
        try pool.fill(blocks[1], with: 0xB2)
        pool.insert(tokens: p, blocks: blocks)
        pool.release(blocks)
        #expect(pool.swapOut(10) == 2)
        let m = pool.match(p)
        #expect(m.tiers == [.cold, .cold] && m.coldCount == 2)
        #expect(try pool.bytes(of: m.blocks[1]) == [UInt8](repeating: 0xB2, count: 64))
        // Overwrite the whole hot tier: only the cold copies hold the data now.
        memset(pool.hotBase, 0, 4 * 64)
        pool.lock(m)
        let hot = try #require(try pool.swapIn(m.blocks))
        #expect(hot.allSatisfy { $0.tier == .hot })
        #expect(try pool.bytes(of: hot[0]) == [UInt8](repeating: 0xA1, count: 64))
        #expect(pool.blockPointer(hot[1]).load(as: UInt8.self) == 0xB2)
        #expect(pool.match(p).blocks == hot)
        #expect(pool.stats.cold.free == 4 && pool.stats.swapIns == 2 && pool.stats.swapOuts == 2)
        pool.release(hot)
        try pool.validate()
    }

    @Test func preemptedSequenceRoundTrip() throws {
        let pool = try makePool(hot: 4, cold: 4, blockBytes: 32)
        // Two whole blocks and a partial one.
        let p = prompt(7, blocks: 2) + [1, 2]
        var table = try #require(pool.allocate(3))
        for (k, b) in table.enumerated() { try pool.fill(b, with: UInt8(0x10 + k)) }
        pool.insertAndAdopt(tokens: p, table: &table)
        let shared = pool.match(p)
        pool.lock(shared)  // another sequence shares the cached prefix
        let out = pool.swapOut(blocks: table)
        #expect(out[0..<2] == table[0..<2], "shared blocks stay hot")
        #expect(out[2].tier == .cold)
        pool.unlock(shared)
        let all = pool.swapOut(blocks: out)
        #expect(all.allSatisfy { $0.tier == .cold })
        #expect(pool.stats.hot.free == 4 && pool.match(p).tiers == [.cold, .cold])
        memset(pool.hotBase, 0xFF, 4 * 32)
        let back = try #require(try pool.swapIn(all))
        for (k, b) in back.enumerated() { #expect(try pool.bytes(of: b) == [UInt8](repeating: UInt8(0x10 + k), count: 32)) }
        #expect(pool.match(p).blocks == Array(back[0..<2]))
        #expect(pool.stats.cold.free == 4)
        pool.release(back)
        try pool.validate()
    }

    @Test func swapInFailsCleanly() throws {
        let pool = try makePool(hot: 2, cold: 4)
        let seq = pool.swapOut(blocks: try #require(pool.allocate(2)))
        let other = try #require(pool.allocate(1))
        #expect(try pool.swapIn(seq) == nil, "one hot block free, two needed")
        #expect(pool.refCount(seq[0]) == 1 && pool.stats.hot.free == 1)
        #expect(throws: MemPoolError.invalidBlock(BlockID(cold: 3))) { try pool.swapIn([BlockID(cold: 3)]) }
        pool.release(other)
        let back = try #require(try pool.swapIn(seq))
        pool.release(back)
        try pool.validate()
    }

    @Test func coldFileBackingRoundTrip() throws {
        let path = temporaryPath("cold")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pool = try makePool(hot: 2, cold: 3, blockBytes: 4096, file: path)
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int
        #expect(size == 3 * 4096)
        let p = prompt(5, blocks: 2)
        let blocks = try #require(pool.allocate(2))
        for (k, b) in blocks.enumerated() {
            let pattern = (0..<4096).map { UInt8(truncatingIfNeeded: $0 * (k + 3)) }
            try pattern.withUnsafeBytes { try pool.writeBlock(b, from: $0.baseAddress!) }
        }
        pool.insert(tokens: p, blocks: blocks)
        pool.release(blocks)
        // Allocating evicts both cached blocks into the file.
        let scratch = try #require(pool.allocate(2))
        memset(pool.hotBase, 0, 2 * 4096)
        pool.release(scratch)
        let m = pool.match(p)
        #expect(m.tiers == [.cold, .cold])
        #expect(pool.address(of: m.blocks[0]) == nil)
        pool.lock(m)
        let hot = try #require(try pool.swapIn(m.blocks))
        for (k, b) in hot.enumerated() {
            #expect(try pool.bytes(of: b) == (0..<4096).map { UInt8(truncatingIfNeeded: $0 * (k + 3)) })
        }
        pool.release(hot)
        try pool.validate()
        #expect(throws: MemPoolError.self) { try makePool(hot: 1, cold: 1, file: "/nonexistent-dir/x") }
    }
}
