/// Byte layout of one KV block: all layers' K and V of `blockTokens` tokens, contiguous.
///
/// Within a block: `[layer][K, V][token in block][kvHeads * headDim]` fp32. Keeping a block's
/// layers together makes it the paper's "huge block": moving it to another instance's MemPool
/// is a single copy, while attention still finds a layer's K rows of a block contiguous.
public struct KVCacheLayout: Sendable, Equatable {
    public let layerCount: Int
    public let kvDim: Int
    public let blockTokens: Int

    public init(layerCount: Int, kvDim: Int, blockTokens: Int = 16) {
        self.layerCount = layerCount
        self.kvDim = kvDim
        self.blockTokens = blockTokens
    }

    /// Floats in one layer's K (or V) part of a block: [blockTokens][kvDim].
    @inlinable public var planeFloats: Int { blockTokens * kvDim }
    @inlinable public var blockFloats: Int { layerCount * 2 * planeFloats }
    @inlinable public var blockBytes: Int { blockFloats * MemoryLayout<Float>.stride }
    @inlinable public var bytesPerToken: Int { blockBytes / blockTokens }

    /// Float offset of layer `layer`'s K plane within a block (V follows it).
    @inlinable public func keyOffset(layer: Int) -> Int { layer * 2 * planeFloats }
    @inlinable public func valueOffset(layer: Int) -> Int { (layer * 2 + 1) * planeFloats }

    /// Blocks needed to hold `tokens` tokens.
    @inlinable public func blocks(forTokens tokens: Int) -> Int { (tokens + blockTokens - 1) / blockTokens }
}

/// Where the KV blocks live: the hot tier of the instance's MemPool.
public struct KVCacheView: @unchecked Sendable {
    /// Block `b` starts at `base + b * layout.blockFloats`.
    public let base: UnsafeMutablePointer<Float>
    public let blockCount: Int
    public let layout: KVCacheLayout

    public init(base: UnsafeMutableRawPointer, blockCount: Int, layout: KVCacheLayout) {
        self.base = base.assumingMemoryBound(to: Float.self)
        self.blockCount = blockCount
        self.layout = layout
    }

    @inlinable public func block(_ id: Int32) -> UnsafeMutablePointer<Float> {
        base + Int(id) * layout.blockFloats
    }
}
