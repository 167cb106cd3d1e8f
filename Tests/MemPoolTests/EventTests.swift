import Foundation
import MemPool
import Testing

@Suite("Events")
struct EventTests {
    @Test func everyChangeIsPublishedInOrder() throws {
        let pool = try makePool(hot: 5, cold: 1)
        let log = EventLog(pool)
        let a = prompt(0, blocks: 2)
        let b = Array(a[0..<4]) + prompt(90, blocks: 2)
        let ha = PrefixHash.chain(a, blockTokens: 4), hb = PrefixHash.chain(b, blockTokens: 4)
        pool.cache(a)
        var table = try #require(pool.allocate(3))
        pool.insertAndAdopt(tokens: b, table: &table)
        #expect(log.events == [
            .inserted(parent: .root, hashes: ha, tokens: a, tier: .hot),
            .inserted(parent: ha[0], hashes: [hb[1], hb[2]], tokens: Array(b[4...]), tier: .hot),
        ])
        pool.release(table)
        log.events.removeAll()
        // Hot LRU: a1, then b's blocks deepest first, then the shared a0.
        #expect(pool.swapOut(1) == 1)
        // The one-block cold tier takes each newer victim by dropping its older block.
        _ = try #require(pool.allocate(4))
        #expect(pool.delete(tokens: a) == 0, "a0 is kept by b")
        #expect(pool.delete(tokens: b) == 2)
        #expect(log.events == [
            .swappedOut(hashes: [ha[1]]),
            .evicted(hashes: [ha[1]], tier: .cold), .swappedOut(hashes: [hb[2]]),
            .evicted(hashes: [hb[2]], tier: .cold), .swappedOut(hashes: [hb[1]]),
            .deleted(hashes: [hb[1]], tier: .cold), .deleted(hashes: [ha[0]], tier: .hot),
        ])
        #expect(log.events.allSatisfy { $0.blockCount == 1 })
        #expect(log.events[0].tierAfter == .cold && log.events[1].tierAfter == nil)
        #expect(pool.stats.indexedBlocks == 0)
        try pool.validate()
    }

    @Test func swapInIsPublished() throws {
        let pool = try makePool(hot: 2, cold: 2)
        let log = EventLog(pool)
        let a = prompt(0, blocks: 2)
        pool.cache(a)
        pool.swapOut(2)
        let m = pool.match(a)
        pool.lock(m)
        let hot = try #require(try pool.swapIn(m.blocks))
        let h = PrefixHash.chain(a, blockTokens: 4)
        #expect(Array(log.events.dropFirst()) == [.swappedOut(hashes: [h[1], h[0]]), .swappedIn(hashes: h)])
        pool.release(hot)
    }

    @Test func unsubscribedHandlersHearNothing() throws {
        let pool = try makePool(hot: 4)
        var count = 0
        let sub = pool.subscribe { _ in count += 1 }
        pool.cache(prompt(0, blocks: 1))
        pool.unsubscribe(sub)
        pool.cache(prompt(50, blocks: 1))
        #expect(count == 1)
    }

    @Test func asyncStreamDeliversTheSameEvents() async throws {
        let pool = try makePool(hot: 4)
        let log = EventLog(pool)
        let stream = pool.events()
        pool.cache(prompt(0, blocks: 2))
        pool.cache(prompt(50, blocks: 2))
        _ = pool.allocate(4)
        let expected = log.events
        #expect(expected.count == 3)
        var received: [MemPoolEvent] = []
        for await e in stream {
            received.append(e)
            if received.count == expected.count { break }
        }
        #expect(received == expected)
    }

    @Test func aFullStreamBufferDropsAndCounts() throws {
        let pool = try makePool(hot: 8)
        let stream = pool.events(bufferingPolicy: .bufferingOldest(2))
        withExtendedLifetime(stream) {
            for k in 0..<5 { pool.cache(prompt(Int32(k * 100), blocks: 1)) }
        }
        #expect(pool.stats.droppedEvents == 3)
    }

    @Test func eventsAreCodable() throws {
        let e = MemPoolEvent.inserted(parent: .root, hashes: [PrefixHash(value: 7)], tokens: [1, 2], tier: .cold)
        let data = try JSONEncoder().encode(e)
        #expect(try JSONDecoder().decode(MemPoolEvent.self, from: data) == e)
        #expect(e.description.contains("cold"))
    }
}

