// Decoders of ggml's K-quant super-blocks: 256 weights per block, in sub-blocks of 32 (Q4_K,
// Q5_K) or 16 (Q2_K, Q3_K, Q6_K) weights with their own scale (and min), the scales quantized
// against the block's fp16 `d` (and `dmin`).
//
// `scales(_:)` unpacks all sub-block scales of a block into float vectors once; `decode` then
// picks lane `chunk` (or 2·chunk, 2·chunk+1 for 16-weight sub-blocks). Kernels call `decode`
// for chunks 0..<8 with a constant trip count, so after unrolling `chunk` is a constant: the
// branches on it fold, and loads shared by several chunks (a byte's two nibbles, the bit planes
// of the high bits) are done once per block.
//
// Values are computed as ggml does: (d·sc)·q − dmin·m, or (d·sc)·q for the symmetric formats;
// the formats with a min fuse the last multiply-add into one FMA (one rounding less).

/// Per-16-weight sub-block scale d·sc_j and negated min (Q2_K; zero for the symmetric formats).
@usableFromInline
struct ScalesAndMins16 {
    let d: SIMD16<Float>
    let negMin: SIMD16<Float>
}

/// The low (`high` 0) or high (1) nibbles of widened bytes. Branch-free, for loops the compiler
/// does not unroll (then `high` is not a constant); a constant `high` folds to one mask or shift.
@inline(__always) @usableFromInline
func nibbles(_ b0: SIMD16<Int32>, _ b1: SIMD16<Int32>, high: Int, _ k: Nibbles) -> (SIMD16<Int32>, SIMD16<Int32>) {
    let s = Int32(4 * high)
    return ((b0 &>> s) & k.mask, (b1 &>> s) & k.mask)
}

/// The 12 bytes at `p` hold 8 six-bit scales and 8 six-bit mins (ggml's `get_scale_min_k4`):
/// bytes 0..<4 are scales 0..<4 (low 6 bits) and the top 2 bits of scales 4..<8; bytes 4..<8 the
/// same for the mins; bytes 8..<12 the low 4 bits of scales 4..<8 (low nibble) and mins 4..<8.
@inline(__always) @usableFromInline
func kScalesAndMins(_ p: UnsafeRawPointer) -> (sc: UInt64, m: UInt64) {
    let a = p.loadUnaligned(as: UInt32.self)
    let b = p.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
    let c = p.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
    let scHi = (c & 0x0F0F_0F0F) | ((a >> 2) & 0x3030_3030)
    let mHi = ((c >> 4) & 0x0F0F_0F0F) | ((b >> 2) & 0x3030_3030)
    return (UInt64(a & 0x3F3F_3F3F) | UInt64(scHi) << 32, UInt64(b & 0x3F3F_3F3F) | UInt64(mHi) << 32)
}

/// Q4_K, 144 bytes: fp16 d, fp16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles.
/// Sub-blocks 2g and 2g+1 are the low and high nibbles of bytes [32g, 32g+32).
@usableFromInline enum DecodeQ4_K: ChunkDecoder {
    @usableFromInline static var blockBytes: Int { 144 }
    @usableFromInline static var chunksPerBlock: Int { 8 }
    @inline(__always) @usableFromInline
    static func scales(_ p: UnsafeRawPointer) -> SIMD16<Float> {
        // Lanes 0..<8: d·sc_j; lanes 8..<16: −dmin·m_j. One vector, so the 16 conversions and
        // multiplies are 3 vector instructions instead of 32 scalar ones.
        let (sc, m) = kScalesAndMins(p + 4)
        let q = widenU8(unsafeBitCast(SIMD2<UInt64>(sc, m), to: SIMD16<UInt8>.self))
        let f = SIMD16<Float>(lowHalf: SIMD8(repeating: blockScale(p)), highHalf: SIMD8(repeating: -blockScale(p, 2)))
        return toFloat(q) * f
    }
    @inline(__always) @usableFromInline
    static func decode(_ p: UnsafeRawPointer, _ s: SIMD16<Float>, _ chunk: Int, _ k: Nibbles) -> (SIMD16<Float>, SIMD16<Float>) {
        let q = 16 + 32 * (chunk >> 1)
        let b0 = widenU8(p.loadUnaligned(fromByteOffset: q, as: SIMD16<UInt8>.self))
        let b1 = widenU8(p.loadUnaligned(fromByteOffset: q + 16, as: SIMD16<UInt8>.self))
        let (lo, hi) = nibbles(b0, b1, high: chunk & 1, k)
        let d = SIMD16<Float>(repeating: s[chunk]), m = SIMD16<Float>(repeating: s[8 + chunk])
        return (m.addingProduct(toFloat(lo), d), m.addingProduct(toFloat(hi), d))
    }
    @inline(__always) @usableFromInline
    static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float { fatalError("block formats have no tail") }
}

/// Q5_K, 176 bytes: as Q4_K (d, dmin, scales at 0..<16) then 32 bytes `qh` whose bit j of byte l
/// is the 5th bit of weight l of sub-block j, then 128 bytes of nibbles as in Q4_K.
@usableFromInline enum DecodeQ5_K: ChunkDecoder {
    @usableFromInline static var blockBytes: Int { 176 }
    @usableFromInline static var chunksPerBlock: Int { 8 }
    @inline(__always) @usableFromInline
    static func scales(_ p: UnsafeRawPointer) -> SIMD16<Float> { DecodeQ4_K.scales(p) }
    @inline(__always) @usableFromInline
    static func decode(_ p: UnsafeRawPointer, _ s: SIMD16<Float>, _ chunk: Int, _ k: Nibbles) -> (SIMD16<Float>, SIMD16<Float>) {
        let q = 48 + 32 * (chunk >> 1)
        let b0 = widenU8(p.loadUnaligned(fromByteOffset: q, as: SIMD16<UInt8>.self))
        let b1 = widenU8(p.loadUnaligned(fromByteOffset: q + 16, as: SIMD16<UInt8>.self))
        let h0 = widenU8(p.loadUnaligned(fromByteOffset: 16, as: SIMD16<UInt8>.self))
        let h1 = widenU8(p.loadUnaligned(fromByteOffset: 32, as: SIMD16<UInt8>.self))
        let j = Int32(chunk)
        let (lo, hi) = nibbles(b0, b1, high: chunk & 1, k)
        let lo5 = lo | (((h0 &>> j) & 1) &<< 4), hi5 = hi | (((h1 &>> j) & 1) &<< 4)
        let d = SIMD16<Float>(repeating: s[chunk]), m = SIMD16<Float>(repeating: s[8 + chunk])
        return (m.addingProduct(toFloat(lo5), d), m.addingProduct(toFloat(hi5), d))
    }
    @inline(__always) @usableFromInline
    static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float { fatalError("block formats have no tail") }
}

/// Q6_K, 210 bytes: 128 bytes `ql` (low 4 bits), 64 bytes `qh` (high 2 bits), 16 int8 scales of
/// 16-weight sub-blocks, fp16 d. value = d·sc·(q − 32). In each 128-weight half h, chunk
/// 4h + t takes nibble t >> 1 of ql bytes [64h + 32(t & 1), +32) and bits 2t, 2t+1 of qh bytes
/// [32h, 32h + 32).
@usableFromInline enum DecodeQ6_K: ChunkDecoder {
    @usableFromInline static var blockBytes: Int { 210 }
    @usableFromInline static var chunksPerBlock: Int { 8 }
    @inline(__always) @usableFromInline
    static func scales(_ p: UnsafeRawPointer) -> SIMD16<Float> {
        toFloat(widenS8(p.loadUnaligned(fromByteOffset: 192, as: SIMD16<Int8>.self))) * blockScale(p, 208)
    }
    @inline(__always) @usableFromInline
    static func decode(_ p: UnsafeRawPointer, _ s: SIMD16<Float>, _ chunk: Int, _ k: Nibbles) -> (SIMD16<Float>, SIMD16<Float>) {
        let h = chunk >> 2, t = chunk & 3
        let l = 64 * h + 32 * (t & 1), qh = 128 + 32 * h
        let b0 = widenU8(p.loadUnaligned(fromByteOffset: l, as: SIMD16<UInt8>.self))
        let b1 = widenU8(p.loadUnaligned(fromByteOffset: l + 16, as: SIMD16<UInt8>.self))
        let h0 = widenU8(p.loadUnaligned(fromByteOffset: qh, as: SIMD16<UInt8>.self))
        let h1 = widenU8(p.loadUnaligned(fromByteOffset: qh + 16, as: SIMD16<UInt8>.self))
        let (lo, hi) = nibbles(b0, b1, high: t >> 1, k)
        let shift = Int32(2 * t), sub = SIMD16<Int32>(repeating: 32)
        let q0 = (lo | (((h0 &>> shift) & 3) &<< 4)) &- sub, q1 = (hi | (((h1 &>> shift) & 3) &<< 4)) &- sub
        return (toFloat(q0) * SIMD16<Float>(repeating: s[2 * chunk]), toFloat(q1) * SIMD16<Float>(repeating: s[2 * chunk + 1]))
    }
    @inline(__always) @usableFromInline
    static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float { fatalError("block formats have no tail") }
}

/// Q2_K, 84 bytes: 16 bytes of 16-weight sub-block scale (low nibble) and min (high nibble),
/// 64 bytes of 2-bit quants, fp16 d, fp16 dmin. value = d·sc·q − dmin·m. In each 128-weight half
/// h, chunk 4h + t takes bits 2t, 2t+1 of bytes [16 + 32h, +32).
@usableFromInline enum DecodeQ2_K: ChunkDecoder {
    @usableFromInline static var blockBytes: Int { 84 }
    @usableFromInline static var chunksPerBlock: Int { 8 }
    @inline(__always) @usableFromInline
    static func scales(_ p: UnsafeRawPointer) -> ScalesAndMins16 {
        let b = widenU8(p.loadUnaligned(as: SIMD16<UInt8>.self))
        return ScalesAndMins16(d: toFloat(b & 0xF) * blockScale(p, 80), negMin: toFloat(b &>> 4) * -blockScale(p, 82))
    }
    @inline(__always) @usableFromInline
    static func decode(_ p: UnsafeRawPointer, _ s: ScalesAndMins16, _ chunk: Int, _ k: Nibbles) -> (SIMD16<Float>, SIMD16<Float>) {
        let q = 16 + 32 * (chunk >> 2), shift = Int32(2 * (chunk & 3))
        let b0 = widenU8(p.loadUnaligned(fromByteOffset: q, as: SIMD16<UInt8>.self))
        let b1 = widenU8(p.loadUnaligned(fromByteOffset: q + 16, as: SIMD16<UInt8>.self))
        let d0 = SIMD16<Float>(repeating: s.d[2 * chunk]), d1 = SIMD16<Float>(repeating: s.d[2 * chunk + 1])
        let m0 = SIMD16<Float>(repeating: s.negMin[2 * chunk]), m1 = SIMD16<Float>(repeating: s.negMin[2 * chunk + 1])
        return (m0.addingProduct(toFloat((b0 &>> shift) & 3), d0), m1.addingProduct(toFloat((b1 &>> shift) & 3), d1))
    }
    @inline(__always) @usableFromInline
    static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float { fatalError("block formats have no tail") }
}

/// Q3_K, 110 bytes: 32 bytes `hmask` (bit j of byte l: weight l of chunk j has q ≥ 0), 64 bytes
/// of 2-bit quants laid out as Q2_K's, 12 bytes of 16 six-bit scales, fp16 d.
/// value = d·(sc − 32)·(q2 − 4·(1 − hbit)).
@usableFromInline enum DecodeQ3_K: ChunkDecoder {
    @usableFromInline static var blockBytes: Int { 110 }
    @usableFromInline static var chunksPerBlock: Int { 8 }
    @inline(__always) @usableFromInline
    static func scales(_ p: UnsafeRawPointer) -> SIMD16<Float> {
        // Scale i: low 4 bits from nibble i / 8 of byte i % 8, high 2 bits from bits
        // 2(i / 4), +1 of byte 8 + i % 4. Built four scales (one UInt32) at a time.
        let a = p.loadUnaligned(fromByteOffset: 96, as: UInt32.self)
        let b = p.loadUnaligned(fromByteOffset: 100, as: UInt32.self)
        let c = p.loadUnaligned(fromByteOffset: 104, as: UInt32.self)
        let m4: UInt32 = 0x0F0F_0F0F, m2: UInt32 = 0x0303_0303
        let w = SIMD4<UInt32>(a & m4 | (c & m2) << 4, b & m4 | (c >> 2 & m2) << 4,
                              a >> 4 & m4 | (c >> 4 & m2) << 4, b >> 4 & m4 | (c >> 6 & m2) << 4)
        let sc = widenU8(unsafeBitCast(w, to: SIMD16<UInt8>.self)) &- 32
        return toFloat(sc) * blockScale(p, 108)
    }
    @inline(__always) @usableFromInline
    static func decode(_ p: UnsafeRawPointer, _ s: SIMD16<Float>, _ chunk: Int, _ k: Nibbles) -> (SIMD16<Float>, SIMD16<Float>) {
        let q = 32 + 32 * (chunk >> 2), shift = Int32(2 * (chunk & 3)), j = Int32(chunk)
        let b0 = widenU8(p.loadUnaligned(fromByteOffset: q, as: SIMD16<UInt8>.self))
        let b1 = widenU8(p.loadUnaligned(fromByteOffset: q + 16, as: SIMD16<UInt8>.self))
        let h0 = widenU8(p.loadUnaligned(as: SIMD16<UInt8>.self))
        let h1 = widenU8(p.loadUnaligned(fromByteOffset: 16, as: SIMD16<UInt8>.self))
        let four = SIMD16<Int32>(repeating: 4)
        let q0 = ((b0 &>> shift) & 3 | ((h0 &>> j) & 1) &<< 2) &- four
        let q1 = ((b1 &>> shift) & 3 | ((h1 &>> j) & 1) &<< 2) &- four
        return (toFloat(q0) * SIMD16<Float>(repeating: s[2 * chunk]), toFloat(q1) * SIMD16<Float>(repeating: s[2 * chunk + 1]))
    }
    @inline(__always) @usableFromInline
    static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float { fatalError("block formats have no tail") }
}
