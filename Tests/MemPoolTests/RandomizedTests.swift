import Foundation
import MemPool
import Testing

/// Thousands of random scheduler-like operations, checked after every one against models the
/// test keeps on its own: reference counts from the sequences' tables, the cached set rebuilt
/// from events alone, brute-force longest-prefix search, and the bytes every block must hold.
@Suite("Randomized operations against a model")
struct RandomizedTests {
    struct Sequence {
        var tokens: [Int32]
        var table: [BlockID]
        var swapped = false
    }

    final class Model {
        let pool: MemPool
        let bt: Int
        var rng: SeededRNG
        var seqs: [Sequence] = []
        var scratch: [[BlockID]] = []
        var pins: [[Int32]] = []
        var corpus: [[Int32]] = []
        /// What the pool caches, rebuilt from its events only: prefix hash → tier.
        var cached: [PrefixHash: BlockTier] = [:]
        var eventErrors: [String] = []
        /// The latest evicted prefixes, for spill orders.
        var evicted: [PrefixHash] = []
        var spillPlans = 0

        init(pool: MemPool, seed: UInt64) {
            self.pool = pool
            bt = pool.blockTokens
            rng = SeededRNG(seed: seed)
            pool.subscribe { [unowned self] in self.apply($0) }
        }

        func apply(_ e: MemPoolEvent) {
            switch e {
            case .inserted(let parent, let hashes, let tokens, let tier):
                if parent != .root && cached[parent] == nil { eventErrors.append("insert under unknown parent") }
                if tokens.count != hashes.count * bt { eventErrors.append("insert token count") }
                for h in hashes {
                    if cached[h] != nil { eventErrors.append("insert of a cached prefix") }
                    cached[h] = tier
                }
            case .evicted(let hashes, let tier), .deleted(let hashes, let tier):
                for h in hashes where cached.removeValue(forKey: h) != tier { eventErrors.append("\(e) of unknown block") }
                if case .evicted = e { evicted = Array((evicted + hashes).suffix(32)) }
            case .swappedOut(let hashes):
                for h in hashes {
                    if cached[h] != .hot { eventErrors.append("swap out of a non-hot block") }
                    cached[h] = .cold
                }
            case .swappedIn(let hashes):
                for h in hashes {
                    if cached[h] != .cold { eventErrors.append("swap in of a non-cold block") }
                    cached[h] = .hot
                }
            }
        }

        func random(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }

        /// Prompts over a 3-token alphabet, often extending an earlier one: many shared
        /// prefixes, divergences inside edges and partial blocks.
        func randomPrompt() -> [Int32] {
            var t: [Int32] = []
            if !corpus.isEmpty && random(3) != 0 {
                let base = corpus[random(corpus.count)]
                t = Array(base[0..<random(base.count + 1)])
            }
            for _ in 0..<random(10) + (t.isEmpty ? 1 : 0) { t.append(Int32(random(3))) }
            return t
        }

        /// The bytes every block holding whole block `i` of a prompt must contain.
        func signature(_ h: PrefixHash) -> [UInt8] {
            withUnsafeBytes(of: (h.value.littleEndian, (~h.value).littleEndian)) { Array($0) }
        }

        func writeSignatures(_ s: Sequence, from: Int) throws {
            let hashes = PrefixHash.chain(s.tokens, blockTokens: bt)
            for k in from..<s.table.count {
                let bytes = k < hashes.count ? signature(hashes[k]) : [UInt8](repeating: 0, count: 16)
                try bytes.withUnsafeBytes { try pool.writeBlock(s.table[k], from: $0.baseAddress!) }
            }
        }

        func checkSignatures(_ blocks: [BlockID], _ tokens: [Int32]) throws {
            let hashes = PrefixHash.chain(tokens, blockTokens: bt)
            for (k, b) in blocks.enumerated() where k < hashes.count {
                #expect(try pool.bytes(of: b) == signature(hashes[k]), "bytes of \(b), block \(k)")
            }
        }

        func insert(_ s: inout Sequence) {
            corpus.append(s.tokens)
            if random(10) == 0 {
                // Not adopting duplicates breaks the locking model; the pool must stay sound.
                pool.insert(tokens: s.tokens, blocks: s.table)
            } else {
                pool.insertAndAdopt(tokens: s.tokens, table: &s.table)
            }
        }

        func start() throws {
            let t = randomPrompt()
            let m = pool.match(t)
            pool.lock(m)
            var table = m.blocks
            if m.coldCount > 0 {
                guard let hot = try pool.swapIn(table) else {
                    pool.release(table)
                    return
                }
                table = hot
            }
            let need = (t.count + bt - 1) / bt - table.count
            guard let fresh = pool.allocate(need) else {
                pool.release(table)
                return
            }
            var s = Sequence(tokens: t, table: table + fresh)
            try writeSignatures(s, from: table.count)
            insert(&s)
            seqs.append(s)
        }

        func extend() throws {
            guard let k = seqs.indices.filter({ !seqs[$0].swapped }).randomElement(using: &rng) else { return }
            var s = seqs[k]
            for _ in 0..<random(6) + 1 { s.tokens.append(Int32(random(3))) }
            let need = (s.tokens.count + bt - 1) / bt - s.table.count
            guard let fresh = pool.allocate(need) else { return }
            s.table += fresh
            // From the old tail block on: it may just have become whole, and the "kernel" fills
            // in its KV; the blocks before it are unchanged.
            try writeSignatures(s, from: seqs[k].tokens.count / bt)
            insert(&s)
            seqs[k] = s
        }

        func step() throws {
            switch random(100) {
            case 0..<25 where seqs.count < 8: try start()
            case 0..<45:
                if !seqs.isEmpty { pool.release(seqs.remove(at: random(seqs.count)).table) }
            case 45..<60: try extend()
            case 60..<75: try probe(randomPrompt())
            case 75..<80: pool.swapOut(random(5))
            case 80..<85:
                if let k = seqs.indices.filter({ !seqs[$0].swapped }).randomElement(using: &rng) {
                    seqs[k].table = pool.swapOut(blocks: seqs[k].table)
                    seqs[k].swapped = true
                }
            case 85..<90:
                if let k = seqs.indices.filter({ seqs[$0].swapped }).randomElement(using: &rng),
                   let back = try pool.swapIn(seqs[k].table) {
                    #expect(back.allSatisfy { $0.tier == .hot })
                    seqs[k].table = back
                    seqs[k].swapped = false
                }
            case 90..<93: pool.delete(tokens: randomPrompt())
            case 93..<95:
                let t = randomPrompt()
                if pool.pin(tokens: t) > 0 { pins.append(t) }
            case 95..<97:
                if !pins.isEmpty { pool.unpin(tokens: pins.remove(at: random(pins.count))) }
            default:
                if random(2) == 0, let b = pool.allocate(random(3) + 1) {
                    scratch.append(b)
                } else if !scratch.isEmpty {
                    pool.release(scratch.remove(at: random(scratch.count)))
                }
            }
        }

        /// A peer's prefix arriving (as a spill receiver stores it), or a spill order for recent
        /// evictions whose plans must carry every block's bytes.
        func peerStep() throws {
            if random(2) == 0 {
                let t = randomPrompt()
                let n = t.count / bt
                guard n > 0 else { return }
                var table = pool.acquirePrefix(t, maxBlocks: n, claim: false)
                let have = table.count
                guard let fresh = pool.allocateGuest(n - have) else {
                    pool.release(table)
                    return
                }
                table += fresh
                try writeSignatures(Sequence(tokens: Array(t.prefix(n * bt)), table: table), from: have)
                pool.insertAndAdopt(tokens: Array(t.prefix(n * bt)), table: &table, claim: false)
                pool.release(table)
                corpus.append(t)
                return
            }
            let drain = random(3) == 0
            let asked = drain ? Array(cached.keys.sorted { $0.value < $1.value }.prefix(8)) : evicted
            for plan in pool.beginSpill(asked, holdCached: drain) {
                spillPlans += 1
                let hashes = PrefixHash.chain(plan.tokens, blockTokens: bt)
                #expect(hashes.count == plan.addresses.count)
                #expect(plan.requiredBlocks < plan.addresses.count)
                #expect(!plan.addresses[plan.requiredBlocks...].contains(0), "only leading blocks left for the peer to have")
                if drain { #expect(plan.requiredBlocks == 0) }
                for (k, a) in plan.addresses.enumerated() where a != 0 {
                    let bytes = Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: a)!, count: pool.blockBytes))
                    #expect(bytes == signature(hashes[k]), "spilled bytes of block \(k)")
                }
                pool.endSpill(plan, sent: random(2) == 0)
            }
        }

        /// Compares a match with the event model, with a brute-force search over the cached
        /// prompts, and with what was ever inserted; checks the matched bytes.
        func probe(_ t: [Int32]) throws {
            let hashes = PrefixHash.chain(t, blockTokens: bt)
            var expected: [BlockTier] = []
            while expected.count < hashes.count, let tier = cached[hashes[expected.count]] { expected.append(tier) }
            let m = pool.match(t)
            #expect(m.tiers == expected, "match of \(t)")
            #expect(m.tokenCount == m.blocks.count * bt && m.tokenCount <= t.count)
            func wholeCommon(_ p: [Int32]) -> Int {
                var i = 0
                while i < p.count && i < t.count && p[i] == t[i] { i += 1 }
                return Swift.min(i, p.count - p.count % bt) / bt
            }
            let brute = pool.snapshot().cachedPrefixes.map(wholeCommon).max() ?? 0
            #expect(m.blocks.count == brute)
            #expect(m.blocks.count <= (corpus.map(wholeCommon).max() ?? 0))
            try checkSignatures(m.blocks, t)
        }

        func checkInvariants() throws {
            try pool.validate()
            let st = pool.stats
            for t in [st.hot, st.cold] { #expect(t.free + t.used + t.cached == t.capacity) }
            // Reference counts are exactly the tables and scratch allocations holding each block.
            var refs: [BlockID: Int] = [:]
            for b in seqs.flatMap(\.table) + scratch.flatMap({ $0 }) { refs[b, default: 0] += 1 }
            for slot in 0..<pool.hotBlocks { #expect(pool.refCount(BlockID(hot: slot)) == refs[BlockID(hot: slot)] ?? 0) }
            for slot in 0..<pool.coldBlocks { #expect(pool.refCount(BlockID(cold: slot)) == refs[BlockID(cold: slot)] ?? 0) }
            #expect(st.hot.used + st.cold.used == refs.count)
            // The event model equals the tree.
            let snap = pool.snapshot()
            var tree: [PrefixHash: BlockTier] = [:]
            for node in snap.nodes {
                let chain = PrefixHash.chain(snap.prefixTokens(of: node), blockTokens: bt)
                for (k, b) in node.blocks.enumerated() { tree[chain[node.startBlock + k]] = b.tier }
            }
            #expect(tree == cached)
            #expect(eventErrors.isEmpty, "\(eventErrors)")
            // Pinned prefixes stay cached.
            for t in pins { #expect(cached[PrefixHash.chain(t, blockTokens: bt)[0]] != nil) }
            for s in seqs { try checkSignatures(s.table, s.tokens) }
        }
    }

    @Test(arguments: [0, 8, 24])
    func randomOperationsKeepEveryInvariant(cold: Int) throws {
        let path = cold == 24 ? temporaryPath("random") : nil
        defer { if let path { try? FileManager.default.removeItem(atPath: path) } }
        let pool = try makePool(hot: 40, cold: cold, blockTokens: 2, blockBytes: 16, file: path)
        let model = Model(pool: pool, seed: UInt64(cold) &* 7919 &+ 17)
        for _ in 0..<3000 {
            try model.step()
            try model.checkInvariants()
            try model.probe(model.randomPrompt())
        }
        let st = pool.stats
        // The run must have exercised what it claims to test.
        #expect(st.evictions > 0 && st.insertedBlocks > 100 && st.matchedBlocks > 100)
        if cold > 0 { #expect(st.demotions > 0 && st.swapIns > 0 && st.swapOuts > 0) }
        for s in model.seqs { pool.release(s.table) }
        for b in model.scratch { pool.release(b) }
        model.pins.forEach { pool.unpin(tokens: $0) }
        #expect(pool.stats.hot.used == 0 && pool.stats.cold.used == 0)
        #expect(pool.stats.hot.evictable + pool.stats.hot.free == pool.hotBlocks)
        try pool.validate()
    }

    @Test(arguments: [0, 8])
    func randomOperationsWithAPeerTierKeepEveryInvariant(cold: Int) throws {
        let pool = try MemPool(MemPoolConfig(blockTokens: 2, blockBytes: 16, hotBlocks: 40, coldBlocks: cold,
                                             peerShare: 0.3, spillStagingBlocks: 6))
        let model = Model(pool: pool, seed: UInt64(cold) &* 104_729 &+ 5)
        for _ in 0..<3000 {
            if model.random(5) == 0 { try model.peerStep() } else { try model.step() }
            try model.checkInvariants()
            #expect(pool.guestBlocks <= pool.guestLimit)
            try model.probe(model.randomPrompt())
        }
        let st = pool.stats
        #expect(st.guestInserted > 20 && st.guestEvicted > 0 && st.stagedBlocks > 50 && model.spillPlans > 10,
                "exercised: \(st.guestInserted) guests, \(st.guestEvicted) evicted, \(st.stagedBlocks) staged, \(model.spillPlans) plans")
        for s in model.seqs { pool.release(s.table) }
        for b in model.scratch { pool.release(b) }
        model.pins.forEach { pool.unpin(tokens: $0) }
        #expect(pool.stats.hot.used == 0 && pool.stats.cold.used == 0)
        try pool.validate()
    }
}
