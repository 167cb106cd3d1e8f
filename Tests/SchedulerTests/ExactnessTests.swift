import MemPool
import Scheduler
import Testing

/// Several real pools under a random scheduler-like workload (shared prompts, evictions into a
/// small cold tier, swaps, deletes, pins), their events fed with sequence numbers to one
/// ``GlobalScheduler``: at every quiescent point its view of each instance equals the pool's own
/// tree, hash for hash and tier for tier.
@Suite("Exact trees from events")
struct ExactnessTests {
    /// One instance: a pool, the workload's sequences on it, and its event feed.
    final class Driver {
        let pool: MemPool
        let id: InstanceID
        let scheduler: GlobalScheduler
        var rng: SeededRNG
        let bt: Int
        var seqs: [(tokens: [Int32], table: [BlockID], swapped: Bool)] = []
        var scratch: [[BlockID]] = []
        var pins: [[Int32]] = []
        /// The pool's event numbering.
        var seq: UInt64 = 0
        var now: UInt64 = 0
        /// The next event is lost on the way.
        var dropNext = false
        /// The next event is delivered twice.
        var duplicateNext = false
        /// An event was lost and the scheduler has not resynchronized since.
        var stale = false
        var verdicts: [FeedVerdict: Int] = [:]
        var wrongDuplicates = 0

        init(pool: MemPool, scheduler: GlobalScheduler, seed: UInt64) {
            self.pool = pool
            self.scheduler = scheduler
            bt = pool.blockTokens
            rng = SeededRNG(seed: seed)
            id = scheduler.join(kind: .colocated, profile: profile(blockTokens: pool.blockTokens))
            pool.subscribe { [unowned self] e in self.deliver(e) }
        }

        func deliver(_ e: MemPoolEvent) {
            seq += 1
            if dropNext {
                dropNext = false
                stale = true
                return
            }
            let v = scheduler.ingest(e, seq: seq, from: id, now: now)
            verdicts[v, default: 0] += 1
            if duplicateNext && v == .apply {
                duplicateNext = false
                if scheduler.ingest(e, seq: seq, from: id, now: now) != .duplicate { wrongDuplicates += 1 }
            }
        }

        /// A snapshot with the current event number, as `WatchCache` sends one.
        func resync() {
            scheduler.resync(id, entries: CacheEntry.entries(of: pool.snapshot()), seq: seq, now: now)
            stale = false
        }

        func random(_ n: Int) -> Int { rng.below(n) }

        func prompt(_ corpus: inout [[Int32]]) -> [Int32] {
            var t: [Int32] = []
            if !corpus.isEmpty && random(4) != 0 {
                let base = corpus[random(corpus.count)]
                t = Array(base[0..<random(base.count + 1)])
            }
            for _ in 0..<random(12) + (t.isEmpty ? 1 : 0) { t.append(Int32(random(3))) }
            return t
        }

        func step(_ corpus: inout [[Int32]]) throws {
            switch random(100) {
            case 0..<25 where seqs.count < 8:
                let t = prompt(&corpus)
                let m = pool.match(t)
                pool.lock(m)
                var table = m.blocks
                if m.coldCount > 0 {
                    guard let hot = try pool.swapIn(table) else { pool.release(table); return }
                    table = hot
                }
                guard let fresh = pool.allocate((t.count + bt - 1) / bt - table.count) else { pool.release(table); return }
                table += fresh
                pool.insertAndAdopt(tokens: t, table: &table)
                corpus.append(t)
                seqs.append((t, table, false))
            case 0..<45:
                if !seqs.isEmpty { pool.release(seqs.remove(at: random(seqs.count)).table) }
            case 45..<60:
                guard let k = seqs.indices.filter({ !seqs[$0].swapped }).randomElement(using: &rng) else { return }
                var s = seqs[k]
                for _ in 0..<random(6) + 1 { s.tokens.append(Int32(random(3))) }
                guard let fresh = pool.allocate((s.tokens.count + bt - 1) / bt - s.table.count) else { return }
                s.table += fresh
                pool.insertAndAdopt(tokens: s.tokens, table: &s.table)
                corpus.append(s.tokens)
                seqs[k] = s
            case 60..<70: _ = pool.match(prompt(&corpus))
            case 70..<76: pool.swapOut(random(5))
            case 76..<81:
                if let k = seqs.indices.filter({ !seqs[$0].swapped }).randomElement(using: &rng) {
                    seqs[k].table = pool.swapOut(blocks: seqs[k].table)
                    seqs[k].swapped = true
                }
            case 81..<87:
                if let k = seqs.indices.filter({ seqs[$0].swapped }).randomElement(using: &rng),
                   let back = try pool.swapIn(seqs[k].table) {
                    seqs[k].table = back
                    seqs[k].swapped = false
                }
            case 87..<91: pool.delete(tokens: prompt(&corpus))
            case 91..<93:
                let t = prompt(&corpus)
                if pool.pin(tokens: t) > 0 { pins.append(t) }
            case 93..<95:
                if !pins.isEmpty { pool.unpin(tokens: pins.remove(at: random(pins.count))) }
            default:
                if random(2) == 0, let b = pool.allocate(random(4) + 1) {
                    scratch.append(b)
                } else if !scratch.isEmpty {
                    pool.release(scratch.remove(at: random(scratch.count)))
                }
            }
        }
    }

    /// Compares every fresh instance's view with its pool, and the tree's matches with the
    /// pools' own trees.
    func check(_ drivers: [Driver], _ scheduler: GlobalScheduler, probes: [[Int32]]) throws {
        let tree = scheduler.tree(.colocated)
        try tree.validate()
        var views: [InstanceID: [PrefixHash: BlockTier]] = [:]
        for d in drivers where !d.stale {
            let expected = poolView(d.pool)
            let entries = CacheEntry.entries(of: d.pool.snapshot())
            #expect(Dictionary(entries.map { ($0.hash, $0.tier) }, uniquingKeysWith: { a, _ in a }) == expected)
            #expect(entries.count == expected.count)
            #expect(tree.view(of: d.id) == expected, "view of \(d.id)")
            #expect(tree.blocks(of: d.id) == expected.count)
            #expect(tree.hotBlocks(of: d.id) == expected.values.filter { $0 == .hot }.count)
            views[d.id] = expected
        }
        for t in probes {
            let hashes = PrefixHash.chain(t, blockTokens: drivers[0].bt)
            let hits = Dictionary(tree.match(hashes).map { ($0.instance, $0) }, uniquingKeysWith: { a, _ in a })
            for (id, view) in views {
                let e = expectedMatch(view, hashes)
                #expect((hits[id]?.blocks ?? 0) == e.blocks && (hits[id]?.hotBlocks ?? 0) == e.hot, "match of \(t) on \(id)")
            }
        }
    }

    @Test func schedulerViewEqualsEveryPoolAtEveryQuiescentPoint() throws {
        let scheduler = GlobalScheduler()
        let drivers = try (0..<6).map { k in
            Driver(pool: try MemPool(MemPoolConfig(blockTokens: 2, blockBytes: 16, hotBlocks: 36, coldBlocks: 10)),
                   scheduler: scheduler, seed: 0x5C4E_D000 + UInt64(k))
        }
        for d in drivers { d.resync() }
        var corpus: [[Int32]] = []
        var rng = SeededRNG(seed: 99)
        var gapsInjected = 0, resyncs = 0
        for step in 0..<2400 {
            let d = drivers[rng.below(drivers.count)]
            d.now = UInt64(step) * 1_000_000
            if step % 300 == 150 {
                d.dropNext = true
                gapsInjected += 1
            }
            if step % 50 == 7 { d.duplicateNext = true }
            try d.step(&corpus)
            // A gap reported (or a lost event noticed by the test) means a fresh snapshot.
            if d.stale && scheduler.feed(of: d.id)?.needsSnapshot == true {
                d.resync()
                resyncs += 1
            }
            let probes = (0..<3).map { _ in d.prompt(&corpus) }
            try check(drivers, scheduler, probes: probes)
        }
        // The run exercised what it claims to.
        let stats = drivers.map(\.pool.stats)
        #expect(stats.map(\.evictions).reduce(0, +) > 50)
        #expect(stats.map(\.swapOuts).reduce(0, +) > 50 && stats.map(\.swapIns).reduce(0, +) > 20)
        #expect(stats.map(\.deletions).reduce(0, +) > 20)
        #expect(stats.map(\.demotions).reduce(0, +) > 20)
        #expect(drivers.map { $0.verdicts[.gap] ?? 0 }.reduce(0, +) >= 1)
        #expect(resyncs >= 1 && gapsInjected == 8)
        #expect(drivers.allSatisfy { $0.wrongDuplicates == 0 })
        #expect(scheduler.tree(.colocated).mismatches == 0)
        // Some prefixes are held by several instances, some by many (bitset nodes).
        let tree = scheduler.tree(.colocated)
        #expect(tree.holderCount > tree.blockCount)

        // Resynchronize the stale ones, then one instance goes silent and expires by TTL.
        for d in drivers where d.stale { d.resync() }
        try check(drivers, scheduler, probes: [])
        let silent = drivers[0]
        let later: UInt64 = 10_000_000_000
        for d in drivers.dropFirst() { scheduler.updateLoad(d.id, InstanceLoad(), now: later) }
        #expect(scheduler.expire(now: later + 1, ttl: .seconds(5)) == [silent.id])
        #expect(tree.view(of: silent.id).isEmpty && tree.blocks(of: silent.id) == 0)
        #expect(scheduler.expire(now: later + 2, ttl: .seconds(5)).isEmpty, "already expired")
        try check(Array(drivers.dropFirst()), scheduler, probes: [])
        // It speaks again: its next event is a gap until a snapshot brings it back.
        silent.now = later + 3
        var events = 0
        for _ in 0..<200 where events == 0 {
            let before = silent.seq
            try silent.step(&corpus)
            events = Int(silent.seq - before)
        }
        #expect(events > 0 && (silent.verdicts[.gap] ?? 0) >= 1)
        silent.resync()
        try check(drivers, scheduler, probes: [])

        // One leaves: nothing of it stays, the others are untouched.
        let leaving = drivers[1]
        scheduler.leave(leaving.id)
        #expect(tree.view(of: leaving.id).isEmpty && !tree.instances.contains(leaving.id))
        #expect(scheduler.ingest(.swappedIn(hashes: []), seq: leaving.seq + 1, from: leaving.id, now: later) == .unknownInstance)
        let rest = drivers.filter { $0.id != leaving.id }
        try check(rest, scheduler, probes: [])
        #expect(tree.holderCount == rest.map { poolView($0.pool).count }.reduce(0, +))
        for d in rest { scheduler.leave(d.id) }
        #expect(tree.blockCount == 0 && tree.holderCount == 0)
        try tree.validate()
    }
}
