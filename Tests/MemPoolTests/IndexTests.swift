import MemPool
import Testing

@Suite("Index: prompt tree insert, match, split, dedupe, delete, pin, snapshot")
struct IndexTests {
    @Test func prefixHashIsChainedAndStable() {
        let t = prompt(1, blocks: 3)
        let chain = PrefixHash.chain(t + [9, 9], blockTokens: 4)
        #expect(chain.count == 3)
        #expect(chain[0] == PrefixHash.root.extended(with: t[0..<4]))
        #expect(chain[2] == chain[1].extended(with: t[8..<12]))
        #expect(chain[1] != PrefixHash.root.extended(with: t[4..<8]), "a block's hash depends on its prefix")
        // Pinned value: the hash must not change between builds or machines.
        #expect(PrefixHash.root.extended(with: [1, 2, 3, 4] as [Int32]).value == 0x0D1B_8285_F6AD_BA57)
    }

    @Test func partialBlocksNeverMatch() throws {
        let pool = try makePool(hot: 8)
        let t = prompt(10, blocks: 2) + [50, 51]
        let blocks = try #require(pool.allocate(3))
        let r = pool.insert(tokens: t, blocks: blocks)
        #expect(r.insertedBlocks == 2 && r.indexedBlocks == 2 && r.blocks == Array(blocks[0..<2]))
        #expect(!pool.isIndexed(blocks[2]))
        #expect(pool.match(t).tokenCount == 8)
        #expect(pool.match(Array(t[0..<7])).blocks == [blocks[0]])
        #expect(pool.match(Array(t[0..<3])).isEmpty)
        #expect(pool.match([]).isEmpty)
        let m = pool.match(t)
        #expect(m.hash == PrefixHash.chain(t, blockTokens: 4)[1] && m.tiers == [.hot, .hot])
        pool.release(blocks)
        #expect(pool.stats.hot.cached == 2 && pool.stats.hot.free == 6)
        try pool.validate()
    }

    @Test func divergenceInsideAnEdgeSplitsItAtABlockBoundary() throws {
        let pool = try makePool(hot: 16)
        let a = prompt(0, blocks: 4)
        var b = a
        b[9] = 999  // diverges inside block 2
        let ba = pool.cache(a)
        #expect(pool.snapshot().nodes.count == 1)
        let bb = try #require(pool.allocate(4))
        let r = pool.insert(tokens: b, blocks: bb)
        #expect(r.duplicates == [0, 1] && r.insertedBlocks == 2)
        #expect(r.blocks == [ba[0], ba[1], bb[2], bb[3]])
        let snap = pool.snapshot()
        #expect(snap.nodes.count == 3)
        let top = try #require(snap.nodes.first { $0.parent == nil })
        #expect(top.blocks == [ba[0], ba[1]] && top.startBlock == 0)
        let kids = snap.nodes.filter { $0.parent == top.id }
        #expect(Set(kids.map(\.blocks)) == [[ba[2], ba[3]], [bb[2], bb[3]]])
        #expect(kids.allSatisfy { $0.startBlock == 2 && $0.tokens.count == 8 })
        #expect(pool.match(a).blocks == ba)
        #expect(pool.match(b).blocks == [ba[0], ba[1], bb[2], bb[3]])
        // A third prompt diverging inside a child's edge splits that child.
        var c = a
        c[13] = 777
        pool.cache(c)
        #expect(pool.snapshot().nodes.count == 5)
        #expect(Set(pool.snapshot().cachedPrefixes) == [a, b, c])
        pool.release(bb)
        try pool.validate()
    }

    @Test func insertDedupesAndAdopts() throws {
        let pool = try makePool(hot: 8)
        let t = prompt(3, blocks: 3)
        let first = pool.cache(t)
        var table = try #require(pool.allocate(3))
        let mine = table
        let r = pool.insertAndAdopt(tokens: t, table: &table)
        #expect(r.duplicates == [0, 1, 2] && r.insertedBlocks == 0 && r.indexedBlocks == 3)
        #expect(table == first)
        #expect(mine.allSatisfy { pool.refCount($0) == 0 && !pool.isIndexed($0) })
        #expect(pool.stats.hot == TierStats(capacity: 8, free: 5, used: 3, cached: 0, evictable: 0))
        // Inserting the same blocks again changes nothing.
        let again = pool.insert(tokens: t, blocks: table)
        #expect(again.duplicates.isEmpty && again.insertedBlocks == 0)
        pool.release(table)
        try pool.validate()
    }

    @Test func aHotCopyReplacesAColdCachedBlock() throws {
        let pool = try makePool(hot: 4, cold: 4)
        let log = EventLog(pool)
        let t = prompt(3, blocks: 2)
        pool.cache(t)
        #expect(pool.swapOut(2) == 2)
        let hot = try #require(pool.allocate(2))
        log.events.removeAll()
        let r = pool.insert(tokens: t, blocks: hot)
        #expect(r.duplicates.isEmpty && r.blocks == hot)
        #expect(pool.match(t).blocks == hot)
        #expect(pool.stats.cold.free == 4)
        #expect(log.events == [.swappedIn(hashes: PrefixHash.chain(t, blockTokens: 4))])
        pool.release(hot)
        try pool.validate()
    }

    @Test func insertStopsAtBlocksTheCallerDoesNotHold() throws {
        let pool = try makePool(hot: 8)
        let blocks = try #require(pool.allocate(2))
        pool.release([blocks[1]])
        let r = pool.insert(tokens: prompt(0, blocks: 3), blocks: blocks + [BlockID(hot: 77)])
        #expect(r.insertedBlocks == 1 && r.indexedBlocks == 1 && r.blocks.count == 3)
        #expect(pool.match(prompt(0, blocks: 3)).blocks == [blocks[0]])
        pool.release([blocks[0]])
        try pool.validate()
    }

    @Test func aGrowingConversationExtendsItsLeaf() throws {
        let pool = try makePool(hot: 8)
        let turn1 = prompt(0, blocks: 2)
        let turn2 = turn1 + prompt(100, blocks: 2)
        pool.cache(turn1)
        var table = try #require(pool.allocate(4))
        pool.insertAndAdopt(tokens: turn2, table: &table)
        #expect(pool.snapshot().nodes.count == 1)
        #expect(pool.snapshot().nodes[0].blocks == table)
        pool.release(table)
        try pool.validate()
    }

    @Test func deleteForgetsAPromptButNotWhatOthersShare() throws {
        let pool = try makePool(hot: 16)
        let s = prompt(0, blocks: 2)
        let a = s + prompt(100, blocks: 2), b = s + prompt(200, blocks: 2)
        pool.cache(a)
        pool.cache(b)
        #expect(pool.delete(tokens: s + prompt(300, blocks: 1)) == 0, "not cached: nothing to forget")
        #expect(pool.delete(tokens: a) == 2)
        #expect(pool.match(a).tokenCount == 8 && pool.match(b).tokenCount == 16)
        // Held blocks, and the path above them, survive a delete.
        let held = pool.match(b)
        pool.lock(held)
        #expect(pool.delete(tokens: s) == 0)
        pool.unlock(held)
        #expect(pool.pin(tokens: b) == 16)
        #expect(pool.delete(tokens: s) == 0)
        pool.unpin(tokens: b)
        #expect(pool.delete(tokens: s) == 4)
        #expect(pool.snapshot().nodes.isEmpty && pool.stats.hot.free == 16)
        #expect(pool.stats.deletions == 6)
        try pool.validate()
    }

    @Test func deleteOfAPrefixTakesEverythingBelowIt() throws {
        let pool = try makePool(hot: 16)
        let a = prompt(0, blocks: 5)
        var b = a
        b[14] = -1
        pool.cache(a)
        pool.cache(b)
        #expect(pool.delete(tokens: Array(a[0..<8])) == 7)
        #expect(pool.stats.indexedBlocks == 0)
        try pool.validate()
    }

    @Test func pinsNestAndSplitAtTheirEnd() throws {
        let pool = try makePool(hot: 8)
        let t = prompt(0, blocks: 4)
        pool.cache(t)
        #expect(pool.pin(tokens: Array(t[0..<8])) == 8)
        #expect(pool.pin(tokens: Array(t[0..<8]) + [42, 42, 42, 42]) == 8)
        #expect(pool.snapshot().nodes.map(\.pins) == [2, 0])
        #expect(pool.stats.hot.evictable == 2 && pool.stats.hot.cached == 4)
        _ = try #require(pool.allocate(6))
        #expect(pool.match(t).tokenCount == 8)
        #expect(pool.allocate(1) == nil)
        pool.unpin(tokens: Array(t[0..<8]))
        #expect(pool.allocate(1) == nil, "still pinned once")
        pool.unpin(tokens: Array(t[0..<8]))
        #expect(pool.allocate(2) != nil)
        #expect(pool.pin(tokens: [1, 2, 3, 4]) == 0)
        try pool.validate()
    }

    @Test func snapshotDescribesTheTree() throws {
        let pool = try makePool(hot: 8, cold: 4)
        let a = prompt(0, blocks: 2)
        let b = Array(a[0..<4]) + prompt(50, blocks: 1)
        let ba = pool.cache(a)
        let held = try #require(pool.allocate(2))
        pool.insert(tokens: b, blocks: held)
        _ = pool.match(a)
        _ = pool.match(a)
        pool.pin(tokens: b)
        #expect(pool.swapOut(1) == 1)  // a's last block, the only evictable one
        let snap = pool.snapshot()
        #expect(snap.nodes.count == 3 && snap.blockTokens == 4)
        let root = snap.nodes[0]
        #expect(root.parent == nil && root.blocks == [ba[0]] && root.pins == 1 && root.hits == 2)
        #expect(root.hash == PrefixHash.chain(a, blockTokens: 4)[0])
        let leafA = try #require(snap.nodes.first { $0.tokens == Array(a[4..<8]) })
        #expect(leafA.tiers == [.cold] && leafA.pins == 0 && leafA.hits == 2 && leafA.heldBlocks == 0)
        #expect(snap.prefixTokens(of: leafA) == a)
        let leafB = try #require(snap.nodes.first { $0.tokens == Array(b[4..<8]) })
        #expect(leafB.blocks == [held[1]] && leafB.pins == 1 && leafB.heldBlocks == 1 && leafB.hits == 0)
        #expect(leafB.lastAccess < root.lastAccess && root.lastAccess <= snap.clock)
        #expect(Set(snap.cachedPrefixes) == [a, b])
        #expect(snap.stats.cold.cached == 1 && snap.stats.nodes == 3 && snap.stats.indexedBlocks == 3)
        try pool.validate()
    }
}
