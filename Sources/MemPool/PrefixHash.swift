/// A stable 64-bit hash of a block-aligned token prefix.
///
/// Chained per block like vLLM's block hashes: the hash of blocks `0...i` mixes the hash of
/// blocks `0..<i` with the token ids of block `i`. It depends only on the token values and the
/// block boundaries — not on the process, the platform's byte order or the instance — so a
/// global scheduler can compare the hashes that different instances publish in their events.
/// Equal hashes are taken as equal prefixes by such consumers; the pool itself always compares
/// tokens before trusting one.
public struct PrefixHash: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The hash bits.
    public var value: UInt64

    /// Wraps hash bits.
    public init(value: UInt64) { self.value = value }

    /// The hash of the empty prefix, the parent of every first block.
    public static let root = PrefixHash(value: 0x6D65_6D73_6572_7665)

    /// The hash of this prefix followed by one block of tokens.
    public func extended(with block: UnsafeBufferPointer<Int32>) -> PrefixHash {
        guard let base = block.baseAddress else { return PrefixHash(value: Self.mix(value, nil, 0)) }
        return PrefixHash(value: Self.mix(value, base, block.count))
    }

    /// The hash of this prefix followed by one block of tokens.
    public func extended(with block: some Collection<Int32>) -> PrefixHash {
        let tokens = Array(block)
        return tokens.withUnsafeBufferPointer { extended(with: $0) }
    }

    /// The chained hashes of every whole block of `tokens`: element `i` identifies blocks `0...i`.
    /// A trailing partial block is ignored.
    public static func chain(_ tokens: [Int32], blockTokens: Int) -> [PrefixHash] {
        guard blockTokens > 0 else { return [] }
        let n = tokens.count / blockTokens
        var out: [PrefixHash] = []
        out.reserveCapacity(n)
        tokens.withUnsafeBufferPointer { tp in
            var h = root.value
            for i in 0..<n {
                h = mix(h, tp.baseAddress! + i * blockTokens, blockTokens)
                out.append(PrefixHash(value: h))
            }
        }
        return out
    }

    public var description: String {
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    // Constants of xxHash64; the structure is a single-lane xxHash-style round per 64 bits
    // (two tokens) with its avalanche at the end: fast, and well mixed enough for 64-bit keys.
    private static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    @inline(__always)
    private static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    /// Hashes `count` tokens at `p` onto the parent hash.
    @inline(__always)
    static func mix(_ parent: UInt64, _ p: UnsafePointer<Int32>?, _ count: Int) -> UInt64 {
        var h = parent &+ p5 &+ UInt64(truncatingIfNeeded: count) &* p3
        var i = 0
        if let p {
            while i + 2 <= count {
                // From values, not memory, so the hash does not depend on byte order.
                let w = UInt64(UInt32(bitPattern: p[i])) | (UInt64(UInt32(bitPattern: p[i + 1])) << 32)
                h ^= rotl(w &* p2, 31) &* p1
                h = rotl(h, 27) &* p1 &+ p4
                i += 2
            }
            if i < count {
                h ^= UInt64(UInt32(bitPattern: p[i])) &* p1
                h = rotl(h, 23) &* p2 &+ p3
            }
        }
        h ^= h >> 33
        h = h &* p2
        h ^= h >> 29
        h = h &* p3
        h ^= h >> 32
        return h
    }
}
