// Per-format decoding of 32 consecutive weights into two SIMD16<Float> halves.
//
// Every kernel (mat-mul, dequantize) is generic over a decoder so that one loop structure
// serves all formats; the generic functions are specialized per format inside this
// module, so the decoders inline into the hot loops.
//
// The element-wise conversions are written as subscript loops on purpose: the stdlib's
// SIMD-to-SIMD conversion initializers are generic and not inlinable, so at -O they become
// calls per vector, whereas these loops lower to single vpmovzxbd / vcvtdq2ps /
// vcvtph2ps instructions (checked with -emit-assembly).

/// Constants for unpacking 4-bit quants, created once per kernel call by `Nibbles.make()`.
///
/// They are run-time values on purpose: with literal constants LLVM narrows the mask and shift
/// to the 16 packed bytes before widening (vmovdqu + vpand + vgf2p8affineqb + 2 vpmovzxbd per
/// block); with opaque ones it widens straight from memory and masks/shifts in 32-bit lanes
/// (vpmovzxbd + vpandd + vpsrlvd): two vector ops fewer per 32 weights, in the loop that
/// bounds batch-1 decode.
@usableFromInline
struct Nibbles {
    let mask: SIMD16<Int32>
    let shift: SIMD16<Int32>

    @inline(__always)
    static func make() -> Nibbles {
        Nibbles(mask: SIMD16(repeating: opaqueInt32(0xF)), shift: SIMD16(repeating: opaqueInt32(4)))
    }
}

/// Identity the optimizer cannot see through (see `Nibbles`).
@_optimize(none) @inline(never)
func opaqueInt32(_ v: Int32) -> Int32 { v }

/// Decodes a row's weights 32 columns (one "chunk") at a time.
///
/// A row is `cols / 32 / chunksPerBlock` blocks of `blockBytes` bytes. Formats with one chunk
/// per block carry their scale in the chunk itself; the K-quants pack 8 chunks in a 256-value
/// super-block whose sub-block scales are unpacked once per block by `scales(_:)` and then
/// handed to each of its chunks. Kernels walk blocks and, inside one, chunks 0..<chunksPerBlock
/// with a constant trip count, so after specialization `chunk` is a constant in `decode` and
/// loads two chunks share (the K-quants' nibble and high-bit bytes) are done once.
@usableFromInline
protocol ChunkDecoder {
    /// Per-block state decoded before the block's chunks (K-quant sub-block scales), or Void.
    associatedtype Scales
    /// Bytes of one block.
    static var blockBytes: Int { get }
    /// 32-value chunks per block: 1, or 8 for the K-quants.
    static var chunksPerBlock: Int { get }
    /// The block at `p`'s scales, decoded once for all its chunks.
    static func scales(_ p: UnsafeRawPointer) -> Scales
    /// Columns [0, 16) and [16, 32) of chunk `chunk` of the block at `p`, as exact floats of
    /// the format's value (up to one fused rounding where it has a min).
    static func decode(_ p: UnsafeRawPointer, _ s: Scales, _ chunk: Int, _ k: Nibbles) -> (SIMD16<Float>, SIMD16<Float>)
    /// Weight `i` of a row stored at `p`, for the column tail of plain float formats whose
    /// `cols` is not a multiple of 32 (block formats never have a tail).
    static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float
}

/// A format whose block is one self-contained 32-value chunk (all but the K-quants).
@usableFromInline
protocol SingleChunkDecoder: ChunkDecoder where Scales == Void {
    /// Bytes that hold 32 consecutive weights of a row.
    static var chunkBytes: Int { get }
    /// Columns [0, 16) and [16, 32) of the chunk at `p`.
    static func decode(_ p: UnsafeRawPointer, _ k: Nibbles) -> (SIMD16<Float>, SIMD16<Float>)
}

extension SingleChunkDecoder {
    @inline(__always) @usableFromInline static var blockBytes: Int { chunkBytes }
    @inline(__always) @usableFromInline static var chunksPerBlock: Int { 1 }
    @inline(__always) @usableFromInline static func scales(_ p: UnsafeRawPointer) {}
    @inline(__always) @usableFromInline
    static func decode(_ p: UnsafeRawPointer, _ s: Void, _ chunk: Int, _ k: Nibbles) -> (SIMD16<Float>, SIMD16<Float>) {
        decode(p, k)
    }
}

@inline(__always) @usableFromInline
func widenU8(_ v: SIMD16<UInt8>) -> SIMD16<Int32> {
    var r = SIMD16<Int32>()
    for i in 0..<16 { r[i] = Int32(truncatingIfNeeded: v[i]) }
    return r
}

@inline(__always) @usableFromInline
func widenS8(_ v: SIMD16<Int8>) -> SIMD16<Int32> {
    var r = SIMD16<Int32>()
    for i in 0..<16 { r[i] = Int32(truncatingIfNeeded: v[i]) }
    return r
}

@inline(__always) @usableFromInline
func toFloat(_ v: SIMD16<Int32>) -> SIMD16<Float> {
    var r = SIMD16<Float>()
    for i in 0..<16 { r[i] = Float(v[i]) }
    return r
}

@inline(__always) @usableFromInline
func halfLoad(_ p: UnsafeRawPointer, _ offset: Int = 0) -> Float {
    Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}

/// fp16 bits to Float with integer ops and one multiply (exact for zero, subnormal and normal
/// values; inf/NaN, which no valid block scale holds, come out as large finite numbers).
///
/// Used for block scales instead of F16C: a scalar fp16 load + vcvtph2ps compiles to
/// vpinsrw, which merges into an arbitrary register — often an FMA accumulator — and so
/// chained each block's decode to the previous block's FMAs (Q8_0 batch 2 ran at half
/// speed). Here the bits go through a general register and a zero-extending vmovd.
@inline(__always) @usableFromInline
func scaleFromHalf(_ h: UInt16) -> Float {
    let b = UInt32(h)
    // Sign to bit 31, exponent+mantissa to bits 13...27: the value is then the half's value
    // times 2^-112 (the exponent-bias difference), undone by the multiply.
    return Float(bitPattern: (b & 0x8000) << 16 | (b & 0x7FFF) << 13) * 0x1p112
}

@inline(__always) @usableFromInline
func blockScale(_ p: UnsafeRawPointer, _ offset: Int = 0) -> Float {
    scaleFromHalf(p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
}

/// A Q4_1 block's (d, m) from one zero-extending 4-byte vector load (vmovd), which carries no
/// false dependency either and needs one conversion less than two `blockScale`s. (Q8_0 and
/// Q4_0 cannot do this: their quants start at byte 2, and LLVM then rebuilds the quant vector
/// out of the overlapping loads with shuffles.)
@inline(__always) @usableFromInline
func blockScalePair(_ p: UnsafeRawPointer) -> (Float, Float) {
    let v = p.loadUnaligned(as: SIMD2<UInt16>.self)
    var w = SIMD4<UInt16>()
    w[0] = v[0]
    w[1] = v[1]
    var r = SIMD4<Float>()
    for i in 0..<4 { r[i] = Float(Float16(bitPattern: w[i])) }
    return (r[0], r[1])
}

@inline(__always) @usableFromInline
func load16(_ p: UnsafeRawPointer, _ offset: Int = 0) -> SIMD16<Float> {
    p.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
}

@inline(__always) @usableFromInline
func store16(_ v: SIMD16<Float>, _ p: UnsafeMutableRawPointer, _ offset: Int = 0) {
    p.storeBytes(of: v, toByteOffset: offset, as: SIMD16<Float>.self)
}

/// Sum of the 16 lanes, as a tree (the stdlib's `sum()` is a scalar loop).
@inline(__always) @usableFromInline
func hsum(_ v: SIMD16<Float>) -> Float {
    let a = v.lowHalf + v.highHalf
    let b = a.lowHalf + a.highHalf
    let c = b.lowHalf + b.highHalf
    return c[0] + c[1]
}

@usableFromInline enum DecodeF32: SingleChunkDecoder {
    @usableFromInline static var chunkBytes: Int { 128 }
    @inline(__always) @usableFromInline
    static func decode(_ p: UnsafeRawPointer, _ k: Nibbles) -> (SIMD16<Float>, SIMD16<Float>) {
        (load16(p), load16(p, 64))
    }
    @inline(__always) @usableFromInline
    static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        p.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
    }
}

@usableFromInline enum DecodeF16: SingleChunkDecoder {
    @usableFromInline static var chunkBytes: Int { 64 }
    @inline(__always) @usableFromInline
    static func half16(_ v: SIMD16<UInt16>) -> SIMD16<Float> {
        var r = SIMD16<Float>()
        for i in 0..<16 { r[i] = Float(Float16(bitPattern: v[i])) }
        return r
    }
    @inline(__always) @usableFromInline
    static func decode(_ p: UnsafeRawPointer, _ k: Nibbles) -> (SIMD16<Float>, SIMD16<Float>) {
        (half16(p.loadUnaligned(as: SIMD16<UInt16>.self)),
         half16(p.loadUnaligned(fromByteOffset: 32, as: SIMD16<UInt16>.self)))
    }
    @inline(__always) @usableFromInline
    static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float { halfLoad(p, 2 * i) }
}

@usableFromInline enum DecodeBF16: SingleChunkDecoder {
    @usableFromInline static var chunkBytes: Int { 64 }
    @inline(__always) @usableFromInline
    static func bf16(_ v: SIMD16<UInt16>) -> SIMD16<Float> {
        var r = SIMD16<UInt32>()
        for i in 0..<16 { r[i] = UInt32(v[i]) }
        return unsafeBitCast(r &<< 16, to: SIMD16<Float>.self)
    }
    @inline(__always) @usableFromInline
    static func decode(_ p: UnsafeRawPointer, _ k: Nibbles) -> (SIMD16<Float>, SIMD16<Float>) {
        (bf16(p.loadUnaligned(as: SIMD16<UInt16>.self)),
         bf16(p.loadUnaligned(fromByteOffset: 32, as: SIMD16<UInt16>.self)))
    }
    @inline(__always) @usableFromInline
    static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        bf16ToFloat(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
    }
}

@usableFromInline enum DecodeQ8_0: SingleChunkDecoder {
    @usableFromInline static var chunkBytes: Int { 34 }
    @inline(__always) @usableFromInline
    static func decode(_ p: UnsafeRawPointer, _ k: Nibbles) -> (SIMD16<Float>, SIMD16<Float>) {
        let d = SIMD16<Float>(repeating: blockScale(p))
        let lo = toFloat(widenS8(p.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self)))
        let hi = toFloat(widenS8(p.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self)))
        return (lo * d, hi * d)
    }
    @inline(__always) @usableFromInline
    static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float { fatalError("block formats have no tail") }
}

@usableFromInline enum DecodeQ4_0: SingleChunkDecoder {
    @usableFromInline static var chunkBytes: Int { 18 }
    @inline(__always) @usableFromInline
    static func decode(_ p: UnsafeRawPointer, _ k: Nibbles) -> (SIMD16<Float>, SIMD16<Float>) {
        let dv = blockScale(p)
        let d = SIMD16<Float>(repeating: dv)
        // fma(q, d, -8d) rounds d·(q-8) exactly once, like the reference: -8d is exact.
        let off = SIMD16<Float>(repeating: -8 * dv)
        let q = widenU8(p.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self))
        let lo = toFloat(q & k.mask), hi = toFloat(q &>> k.shift)
        return (off.addingProduct(lo, d), off.addingProduct(hi, d))
    }
    @inline(__always) @usableFromInline
    static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float { fatalError("block formats have no tail") }
}

@usableFromInline enum DecodeQ4_1: SingleChunkDecoder {
    @usableFromInline static var chunkBytes: Int { 20 }
    @inline(__always) @usableFromInline
    static func decode(_ p: UnsafeRawPointer, _ k: Nibbles) -> (SIMD16<Float>, SIMD16<Float>) {
        // Folding the min into the dequantized weight (d·q + m) costs two FMAs per block that
        // the whole batch shares, and needs no per-call Σx scratch for the m·Σx term.
        let (dv, mv) = blockScalePair(p)
        let d = SIMD16<Float>(repeating: dv), m = SIMD16<Float>(repeating: mv)
        let q = widenU8(p.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self))
        let lo = toFloat(q & k.mask), hi = toFloat(q &>> k.shift)
        return (m.addingProduct(lo, d), m.addingProduct(hi, d))
    }
    @inline(__always) @usableFromInline
    static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float { fatalError("block formats have no tail") }
}

/// The 5th bits of a Q5 block's 32 quants (bit i of `qh` belongs to weight i), as 0 or 16 in
/// two 16-lane halves.
@inline(__always) @usableFromInline
func fifthBits(_ qh: UInt32) -> (SIMD16<Int32>, SIMD16<Int32>) {
    let v = SIMD16<Int32>(repeating: Int32(bitPattern: qh))
    let lo = SIMD16<Int32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    let hi = lo &+ 16
    return (((v &>> lo) & 1) &<< 4, ((v &>> hi) & 1) &<< 4)
}

@usableFromInline enum DecodeQ5_0: SingleChunkDecoder {
    @usableFromInline static var chunkBytes: Int { 22 }
    @inline(__always) @usableFromInline
    static func decode(_ p: UnsafeRawPointer, _ k: Nibbles) -> (SIMD16<Float>, SIMD16<Float>) {
        // Layout: fp16 d, u32 qh (5th bits), 16 bytes of nibbles (low: weights 0..<16). d·(q - 16).
        let dv = blockScale(p)
        let d = SIMD16<Float>(repeating: dv), off = SIMD16<Float>(repeating: -16 * dv)
        let (h0, h1) = fifthBits(p.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        let q = widenU8(p.loadUnaligned(fromByteOffset: 6, as: SIMD16<UInt8>.self))
        let lo = toFloat((q & k.mask) | h0), hi = toFloat((q &>> k.shift) | h1)
        return (off.addingProduct(lo, d), off.addingProduct(hi, d))
    }
    @inline(__always) @usableFromInline
    static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float { fatalError("block formats have no tail") }
}

@usableFromInline enum DecodeQ5_1: SingleChunkDecoder {
    @usableFromInline static var chunkBytes: Int { 24 }
    @inline(__always) @usableFromInline
    static func decode(_ p: UnsafeRawPointer, _ k: Nibbles) -> (SIMD16<Float>, SIMD16<Float>) {
        // Layout: fp16 d, fp16 m, u32 qh, 16 bytes of nibbles. d·q + m, fused like Q4_1.
        let (dv, mv) = blockScalePair(p)
        let d = SIMD16<Float>(repeating: dv), m = SIMD16<Float>(repeating: mv)
        let (h0, h1) = fifthBits(p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        let q = widenU8(p.loadUnaligned(fromByteOffset: 8, as: SIMD16<UInt8>.self))
        let lo = toFloat((q & k.mask) | h0), hi = toFloat((q &>> k.shift) | h1)
        return (m.addingProduct(lo, d), m.addingProduct(hi, d))
    }
    @inline(__always) @usableFromInline
    static func scalar(_ p: UnsafeRawPointer, _ i: Int) -> Float { fatalError("block formats have no tail") }
}
