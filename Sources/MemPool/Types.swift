/// Which memory tier holds a block.
public enum BlockTier: Int, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// The tier the attention kernel reads in place, at `MemPool.hotBase`.
    case hot = 0
    /// The overflow tier (a second memory area or a file): its blocks must be swapped in before use.
    case cold = 1

    public var description: String { self == .hot ? "hot" : "cold" }
}

/// A handle to one KV block of a ``MemPool``.
///
/// A tagged 32-bit value, so block tables stay compact and tell their tier without asking the pool:
/// - a hot block's raw value is its slot, `0..<hotBlocks`; its bytes are at
///   `hotBase + rawValue * blockBytes`, which is what the attention kernel reads;
/// - a cold block carries the sign bit (`rawValue < 0`) and its cold slot in the low 31 bits.
///
/// A handle is meaningful only to the pool that issued it. `MemoryLayout<BlockID>` equals that of
/// `Int32`, so a `[BlockID]` table can be handed to a kernel as 32-bit slots once all are hot.
public struct BlockID: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// The tagged value (see the type's documentation).
    public var rawValue: Int32

    /// Wraps a tagged value.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The handle of hot slot `slot`.
    public init(hot slot: Int) { rawValue = Int32(truncatingIfNeeded: slot) }

    /// The handle of cold slot `slot`.
    public init(cold slot: Int) { rawValue = Int32(truncatingIfNeeded: slot) | Int32.min }

    /// The tier that holds the block.
    public var tier: BlockTier { rawValue < 0 ? .cold : .hot }

    /// The block's slot inside its tier.
    public var slot: Int { Int(rawValue & Int32.max) }

    public static func < (a: BlockID, b: BlockID) -> Bool { a.rawValue < b.rawValue }

    public var description: String { (rawValue < 0 ? "c" : "h") + String(slot) }
}

/// How a ``MemPool`` is sized.
public struct MemPoolConfig: Sendable, Hashable {
    /// Tokens per block (16 in the paper). Only whole blocks are ever cached.
    public var blockTokens: Int
    /// Bytes per block: all layers' K and V of `blockTokens` tokens, contiguous.
    /// Blocks are 64-byte aligned when this is a multiple of 64 (the base is page aligned).
    public var blockBytes: Int
    /// Blocks in the hot tier.
    public var hotBlocks: Int
    /// Blocks in the cold tier (0: no cold tier; evicted blocks are dropped).
    public var coldBlocks: Int
    /// When set, the cold tier lives in this file (created or truncated, accessed with pread and
    /// pwrite) rather than in memory. The pool does not delete it.
    public var coldFilePath: String?
    /// The peer tier: the share of all blocks that may hold peers' cached prefixes (0: none).
    public var peerShare: Double = 0
    /// Own blocks' bytes kept as they are evicted, so a spill order can still send them to a
    /// peer (0: evicted blocks are gone at once, as without a peer tier).
    public var spillStagingBlocks: Int = 0

    /// Sizes the tiers in blocks.
    public init(blockTokens: Int = 16, blockBytes: Int, hotBlocks: Int, coldBlocks: Int = 0,
                coldFilePath: String? = nil, peerShare: Double = 0, spillStagingBlocks: Int = 0) {
        self.blockTokens = blockTokens
        self.blockBytes = blockBytes
        self.hotBlocks = hotBlocks
        self.coldBlocks = coldBlocks
        self.coldFilePath = coldFilePath
        self.peerShare = peerShare
        self.spillStagingBlocks = spillStagingBlocks
    }

    /// Sizes the tiers in bytes; each capacity is rounded down to whole blocks.
    public init(blockTokens: Int = 16, blockBytes: Int, hotBytes: Int, coldBytes: Int = 0,
                coldFilePath: String? = nil) {
        let per = Swift.max(blockBytes, 1)
        self.init(blockTokens: blockTokens, blockBytes: blockBytes, hotBlocks: hotBytes / per,
                  coldBlocks: coldBytes / per, coldFilePath: coldFilePath)
    }

    /// Blocks in both tiers.
    public var totalBlocks: Int { hotBlocks + coldBlocks }
}

/// Failures the pool reports by throwing. Running out of blocks is not one of them: it is a `nil`
/// return value the scheduler acts on.
public enum MemPoolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The configuration cannot describe a pool.
    case invalidConfig(String)
    /// The operating system refused the memory of a tier.
    case outOfMemory(tier: BlockTier, bytes: Int)
    /// The cold tier's file could not be opened or sized.
    case coldFile(path: String, operation: String, errno: Int32)
    /// A read or write of the cold tier's file failed.
    case io(operation: String, errno: Int32)
    /// A handle that this pool did not issue, or that no one holds, was used where a held one is needed.
    case invalidBlock(BlockID)
    /// ``MemPool/validate()`` found broken internal bookkeeping.
    case inconsistent(String)

    public var description: String {
        switch self {
        case .invalidConfig(let why): "invalid MemPool configuration: \(why)"
        case .outOfMemory(let tier, let bytes): "cannot allocate \(bytes) bytes for the \(tier) tier"
        case .coldFile(let path, let op, let e): "cold tier file \(path): \(op) failed (errno \(e))"
        case .io(let op, let e): "cold tier \(op) failed (errno \(e))"
        case .invalidBlock(let id): "block \(id) is not a held block of this pool"
        case .inconsistent(let why): "MemPool bookkeeping is inconsistent: \(why)"
        }
    }
}

/// The longest cached prefix of a prompt, at block granularity.
public struct PrefixMatch: Sendable, Hashable {
    /// The cached blocks, one per matched block of the prompt, in order. They may mix tiers.
    public var blocks: [BlockID]
    /// Tokens covered: `blocks.count * blockTokens`; never beyond the prompt's last whole block.
    public var tokenCount: Int
    /// The chained hash of the matched prefix (``PrefixHash/root`` when nothing matched).
    public var hash: PrefixHash

    /// Creates a match (the pool makes these; tests may too).
    public init(blocks: [BlockID], tokenCount: Int, hash: PrefixHash) {
        self.blocks = blocks
        self.tokenCount = tokenCount
        self.hash = hash
    }

    /// Whether nothing matched.
    public var isEmpty: Bool { blocks.isEmpty }
    /// The tier of each matched block.
    public var tiers: [BlockTier] { blocks.map(\.tier) }
    /// How many matched blocks are cold and need ``MemPool/swapIn(_:)`` before the kernel can read them.
    public var coldCount: Int { blocks.reduce(0) { $0 + ($1.rawValue < 0 ? 1 : 0) } }
}

/// What ``MemPool/insert(tokens:blocks:)`` did.
public struct InsertResult: Sendable, Hashable {
    /// The canonical block table of the inserted prefix: the cached block where the prefix was
    /// already cached by another block, the caller's block elsewhere. Its length is the number of
    /// whole blocks considered.
    public var blocks: [BlockID]
    /// Positions whose caller block duplicates an already cached block (`blocks[i]`): the caller
    /// should retain `blocks[i]`, release its own block and adopt the cached one, as
    /// ``MemPool/insertAndAdopt(tokens:table:)`` does.
    public var duplicates: [Int]
    /// Blocks newly added to the index.
    public var insertedBlocks: Int
    /// Whole blocks of the prompt that ended up indexed (already cached, adopted or new).
    /// Less than `blocks.count` only when a caller block could not be indexed (not held, or
    /// already indexed elsewhere).
    public var indexedBlocks: Int
}

/// Block counts of one tier. `free + used + cached == capacity` always holds.
public struct TierStats: Sendable, Hashable, Codable {
    /// Blocks in the tier.
    public var capacity: Int
    /// Blocks that hold nothing and are ready to allocate.
    public var free: Int
    /// Blocks with a reference count above zero (held by sequences; may also be indexed).
    public var used: Int
    /// Unreferenced blocks kept by the index.
    public var cached: Int
    /// Cached blocks that eviction may take (cached and not pinned), in LRU order inside the pool.
    public var evictable: Int
    /// Blocks (used or cached) holding peers' prefixes: the peer tier's share of this tier.
    public var guest: Int

    /// Creates counts (the pool makes these; tests compare against them).
    public init(capacity: Int, free: Int, used: Int, cached: Int, evictable: Int, guest: Int = 0) {
        self.capacity = capacity
        self.free = free
        self.used = used
        self.cached = cached
        self.evictable = evictable
        self.guest = guest
    }
}

extension TierStats {
    /// Two tiers' counts added up (instances of a cluster).
    public static func + (a: TierStats, b: TierStats) -> TierStats {
        TierStats(capacity: a.capacity + b.capacity, free: a.free + b.free, used: a.used + b.used,
                  cached: a.cached + b.cached, evictable: a.evictable + b.evictable, guest: a.guest + b.guest)
    }
}

/// Counts of the pool: per tier, and running totals since creation.
public struct MemPoolStats: Sendable, Hashable, Codable {
    /// The hot tier.
    public var hot: TierStats
    /// The cold tier.
    public var cold: TierStats
    /// Nodes of the prompt tree, the root excluded.
    public var nodes: Int
    /// Blocks in the prompt tree, both tiers.
    public var indexedBlocks: Int
    /// Cached blocks dropped from the index under memory pressure.
    public var evictions: Int
    /// Hot blocks moved to the cold tier by eviction (instead of being dropped).
    public var demotions: Int
    /// Blocks moved hot to cold by ``MemPool/swapOut(_:)`` or ``MemPool/swapOut(blocks:)``.
    public var swapOuts: Int
    /// Blocks moved cold to hot by ``MemPool/swapIn(_:)`` or promoted by an insert.
    public var swapIns: Int
    /// Blocks dropped by ``MemPool/delete(tokens:)``.
    public var deletions: Int
    /// ``MemPool/match(_:)`` calls, and blocks they found.
    public var matches: Int
    /// Blocks found by matches.
    public var matchedBlocks: Int
    /// Blocks added to the index by inserts.
    public var insertedBlocks: Int
    /// Retain or release calls on blocks that were free or unknown; they were ignored.
    public var invalidCalls: Int
    /// Cold tier reads or writes that failed.
    public var ioErrors: Int
    /// Events an `AsyncStream` subscriber's full buffer did not take.
    public var droppedEvents: Int
    /// Peers' blocks indexed here (the peer tier), and those evicted again.
    public var guestInserted: Int = 0
    public var guestEvicted: Int = 0
    /// Own blocks copied to the spill staging area as they were evicted, and staged blocks sent
    /// to a peer.
    public var stagedBlocks: Int = 0
    public var spilledBlocks: Int = 0
}
