import Foundation
import MemPool
import Testing

/// A pool with a peer tier: 4-token blocks of 16 bytes.
private func peerPool(hot: Int, cold: Int = 0, share: Double = 0.5, staging: Int = 0) throws -> MemPool {
    try MemPool(MemPoolConfig(blockTokens: 4, blockBytes: 16, hotBlocks: hot, coldBlocks: cold,
                              peerShare: share, spillStagingBlocks: staging))
}

extension MemPool {
    /// Stores a peer's prompt as guest blocks, each block filled with `byte + i`, as a spill
    /// receiver does; returns false without room.
    func cacheGuest(_ tokens: [Int32], byte: UInt8 = 0x40) throws -> Bool {
        guard var blocks = allocateGuest(tokens.count / blockTokens) else { return false }
        for (i, b) in blocks.enumerated() { try fill(b, with: byte &+ UInt8(i)) }
        insertAndAdopt(tokens: tokens, table: &blocks, claim: false)
        release(blocks)
        return true
    }

    /// Caches an own prompt with block `i` filled with `byte + i`.
    func cacheFilled(_ tokens: [Int32], byte: UInt8) throws {
        let blocks = try #require(allocate(tokens.count / blockTokens))
        for (i, b) in blocks.enumerated() { try fill(b, with: byte &+ UInt8(i)) }
        insert(tokens: tokens, blocks: blocks)
        release(blocks)
    }
}

@Suite("Peer tier")
struct PeerTierTests {
    @Test func guestsAreEvictedBeforeOwnBlocks() throws {
        let pool = try peerPool(hot: 8)
        let own = prompt(0, blocks: 2), guest = prompt(100, blocks: 2)
        pool.cache(own)
        #expect(try pool.cacheGuest(guest))
        // Own blocks cached later than the guests still outlive them.
        let later = prompt(200, blocks: 1)
        pool.cache(later)
        #expect(pool.stats.hot.guest == 2 && pool.guestBlocks == 2)
        _ = try #require(pool.allocate(5))
        #expect(pool.cachedBlocks(of: own) == 2 && pool.cachedBlocks(of: later) == 1)
        #expect(pool.cachedBlocks(of: guest) == 0)
        #expect(pool.stats.guestEvicted == 2 && pool.guestBlocks == 0)
        try pool.validate()
    }

    @Test func guestsStayWithinTheShareAndNeverEvictOwnBlocks() throws {
        let pool = try peerPool(hot: 8, share: 0.25)
        #expect(pool.guestLimit == 2)
        #expect(pool.allocateGuest(3) == nil)
        #expect(try pool.cacheGuest(prompt(100, blocks: 2)))
        // A newer guest prefix replaces the older one rather than exceed the share.
        #expect(try pool.cacheGuest(prompt(300, blocks: 2)))
        #expect(pool.cachedBlocks(of: prompt(100, blocks: 2)) == 0)
        #expect(pool.cachedBlocks(of: prompt(300, blocks: 2)) == 2)
        // With the rest of the pool own and cached, a guest finds no room.
        for k in 0..<3 { pool.cache(prompt(Int32(1000 + 100 * k), blocks: 2)) }
        #expect(pool.stats.hot.free == 0)
        _ = pool.delete(tokens: prompt(300, blocks: 2))
        #expect(pool.guestRoom == 2)
        pool.cache(prompt(2000, blocks: 2))
        #expect(pool.guestRoom == 0 && pool.allocateGuest(1) == nil)
        #expect(pool.stats.evictions == 0 || pool.cachedBlocks(of: prompt(1000, blocks: 2)) == 2)
        try pool.validate()
    }

    @Test func aGuestPrefixTakenIntoUseBecomesOwn() throws {
        let pool = try peerPool(hot: 8)
        let p = prompt(0, blocks: 3)
        #expect(try pool.cacheGuest(p))
        let blocks = pool.acquirePrefix(p + [7], maxBlocks: 3)
        #expect(blocks.count == 3 && pool.guestBlocks == 0)
        pool.release(blocks)
        // Own now: a guest for another prefix is evicted first.
        #expect(try pool.cacheGuest(prompt(100, blocks: 2)))
        _ = try #require(pool.allocate(4))
        #expect(pool.cachedBlocks(of: p) == 3)
        try pool.validate()
    }

    @Test func aGuestMovesToTheColdTierOnlyWhereItDisplacesNoOwnBlock() throws {
        let pool = try peerPool(hot: 4, cold: 2)
        let ownCold = prompt(0, blocks: 2)
        pool.cache(ownCold)
        #expect(pool.swapOut(2) == 2)
        #expect(try pool.cacheGuest(prompt(100, blocks: 2)))
        _ = try #require(pool.allocate(4))
        #expect(pool.cachedBlocks(of: ownCold) == 2, "the own cold blocks were not displaced")
        #expect(pool.guestBlocks == 0 && pool.stats.guestEvicted == 2)
        try pool.validate()
    }

    @Test func evictedBlocksAreStagedAndSpilledWithTheirPath() throws {
        let pool = try peerPool(hot: 4, staging: 4)
        let p = prompt(0, blocks: 3)
        try pool.cacheFilled(p, byte: 0x10)
        // One eviction: the prompt's deepest block, whose path is still cached.
        _ = try #require(pool.allocate(2))
        #expect(pool.cachedBlocks(of: p) == 2 && pool.stagedBlockCount == 1)
        let hashes = PrefixHash.chain(p, blockTokens: 4)
        let plans = pool.beginSpill([hashes[2]])
        #expect(plans.count == 1)
        let plan = try #require(plans.first)
        #expect(plan.tokens == p && plan.addresses.count == 3 && plan.stagedBlocks == 1)
        // The path's cached blocks are not taken from a pool short of blocks: the peer must
        // have them.
        #expect(plan.requiredBlocks == 2 && plan.addresses[0] == 0 && plan.addresses[1] == 0)
        let bytes = Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: plan.addresses[2])!, count: 16))
        #expect(bytes == [UInt8](repeating: 0x12, count: 16))
        #expect(pool.stats.hot.used == 2)
        pool.endSpill(plan, sent: true)
        #expect(pool.stats.hot.used == 2 && pool.stagedBlockCount == 0 && pool.stats.spilledBlocks == 1)
        try pool.validate()
    }

    @Test func readingAPathForAPeerKeepsItsRecency() throws {
        let pool = try peerPool(hot: 6, staging: 4)
        let old = prompt(0, blocks: 3), newer = prompt(100, blocks: 2)
        pool.cache(old)
        pool.cache(newer)
        // One eviction: old's deepest block. A drain reads the rest of its path, cached here.
        _ = try #require(pool.allocate(2))
        let plans = pool.beginSpill([PrefixHash.chain(old, blockTokens: 4)[1]], holdCached: true)
        #expect(plans.count == 1 && plans[0].addresses.count == 3 && plans[0].requiredBlocks == 0)
        #expect(pool.stats.hot.used == 2 + 2, "the cached path is held while it is read")
        pool.endSpill(plans[0], sent: true)
        try pool.validate()
        // The rest of the old prompt is still older than the newer one.
        _ = try #require(pool.allocate(2))
        #expect(pool.cachedBlocks(of: old) == 0 && pool.cachedBlocks(of: newer) == 2)
        try pool.validate()
    }

    @Test func aWholeEvictedPrefixSpillsAsOnePlanAndTheRingOverwritesTheOldest() throws {
        let pool = try peerPool(hot: 4, staging: 2)
        let p = prompt(0, blocks: 2), q = prompt(100, blocks: 2)
        try pool.cacheFilled(p, byte: 0x20)
        _ = try #require(pool.allocate(2))
        let taken = try #require(pool.allocate(2))
        #expect(pool.stagedBlockCount == 2 && pool.stats.stagedBlocks == 2)
        let hp = PrefixHash.chain(p, blockTokens: 4)
        let plans = pool.beginSpill([hp[0]])
        #expect(plans.count == 1 && plans[0].tokens == p && plans[0].stagedBlocks == 2, "the staged chain below the asked block goes too")
        pool.endSpill(plans[0], sent: false)
        #expect(pool.stagedBlockCount == 2, "an unsent plan leaves the ring as it was")
        // Two newer evictions take both slots.
        pool.release(taken)
        try pool.cacheFilled(q, byte: 0x30)
        _ = try #require(pool.allocate(2))
        #expect(pool.stagedBlockCount == 2 && pool.stats.stagedBlocks == 4)
        #expect(pool.beginSpill(hp).isEmpty)
        #expect(pool.beginSpill(PrefixHash.chain(q, blockTokens: 4)).count == 1)
        try pool.validate()
    }

    @Test func guestsAreNeverStaged() throws {
        let pool = try peerPool(hot: 4, staging: 4)
        #expect(try pool.cacheGuest(prompt(0, blocks: 2)))
        _ = try #require(pool.allocate(4))
        #expect(pool.stagedBlockCount == 0 && pool.stats.guestEvicted == 2)
        try pool.validate()
    }
}
