/// y[b * yStride + r] = Σ_c W[r, c] · x[b * xStride + c] for r in `rows`, b in 0..<batch.
///
/// Reads each weight row once for the whole batch: decode steps are bandwidth-bound, so a
/// batch of B tokens costs about one pass over the (quantized) weights. Weights are decoded
/// to exact fp32 in registers and multiplied with fp32 activations, so the result equals the
/// dequantize-then-dot reference up to summation order (no activation quantization).
///
/// Activations should be 64-byte aligned with `xStride` a multiple of 16: vector loads that
/// straddle cache lines cost up to a third of the batched throughput.
///
/// Allocates nothing and is safe to call concurrently on disjoint `rows` (that is how the
/// caller splits it over a `ThreadPool`; see also `quantizedMatMul(_:x:xStride:batch:y:yStride:pool:)`).
/// `x` must not alias `y`.
public func quantizedMatMul(
    _ w: QuantizedMatrix,
    x: UnsafePointer<Float>, xStride: Int, batch: Int,
    y: UnsafeMutablePointer<Float>, yStride: Int,
    rows: Range<Int>
) {
    precondition(rows.lowerBound >= 0 && rows.upperBound <= w.rows)
    if rows.isEmpty || batch <= 0 { return }
    let a = MatMulArgs(base: w.base, rowBytes: w.rowBytes, cols: w.cols,
                       x: UnsafeRawPointer(x), xStride: 4 * xStride, batch: batch,
                       y: y, yStride: yStride)
    switch w.format {
    case .f32: matMul(DecodeF32.self, a, rows)
    case .f16: matMul(DecodeF16.self, a, rows)
    case .bf16: matMul(DecodeBF16.self, a, rows)
    case .q8_0: matMul(DecodeQ8_0.self, a, rows)
    case .q4_0: matMul(DecodeQ4_0.self, a, rows)
    case .q4_1: matMul(DecodeQ4_1.self, a, rows)
    case .q5_0: matMul(DecodeQ5_0.self, a, rows)
    case .q5_1: matMul(DecodeQ5_1.self, a, rows)
    case .q2_K: matMul(DecodeQ2_K.self, a, rows)
    case .q3_K: matMul(DecodeQ3_K.self, a, rows)
    case .q4_K: matMul(DecodeQ4_K.self, a, rows)
    case .q5_K: matMul(DecodeQ5_K.self, a, rows)
    case .q6_K: matMul(DecodeQ6_K.self, a, rows)
    }
}

/// `quantizedMatMul` over all rows of `w`, split across the pool's threads.
///
/// Slices are multiples of 16 rows so that no two threads write the same cache line of `y`
/// (for the usual 64-byte-aligned `y`).
public func quantizedMatMul(
    _ w: QuantizedMatrix,
    x: UnsafePointer<Float>, xStride: Int, batch: Int,
    y: UnsafeMutablePointer<Float>, yStride: Int,
    pool: ThreadPool
) {
    let n = pool.threadCount
    if n == 1 || w.rows < 32 {
        quantizedMatMul(w, x: x, xStride: xStride, batch: batch, y: y, yStride: yStride, rows: 0..<w.rows)
        return
    }
    let groups = (w.rows + 15) / 16
    // Big matrices get a few parts per thread, so a thread slowed by another process on its
    // core hands its remaining parts to the others; small ones are not worth the claims.
    let parts = min(groups, w.rows * w.cols * batch >= 1 << 20 ? 4 * n : n)
    pool.run(parts: parts) { t in
        let g = ThreadPool.split(groups, part: t, of: parts)
        let r = (g.lowerBound * 16)..<min(w.rows, g.upperBound * 16)
        quantizedMatMul(w, x: x, xStride: xStride, batch: batch, y: y, yStride: yStride, rows: r)
    }
}

struct MatMulArgs {
    let base: UnsafeRawPointer
    let rowBytes: Int
    let cols: Int
    let x: UnsafeRawPointer
    /// Bytes between activation vectors.
    let xStride: Int
    let batch: Int
    let y: UnsafeMutablePointer<Float>
    let yStride: Int
}

/// Rows are processed in groups small enough that the group's weights stay in L1/L2 while
/// every batch tile passes over them; the weights then come from DRAM exactly once.
private let rowGroup = 16

@inline(never)
private func matMul<D: ChunkDecoder>(_: D.Type, _ a: MatMulArgs, _ rows: Range<Int>) {
    let chunks = a.cols / 32
    let nib = Nibbles.make()
    if a.batch == 1 {
        for r in rows {
            a.y[r] = dot1Row(D.self, a.base + r * a.rowBytes, a.x, chunks, nib) + tail(D.self, a, r, 0)
        }
        return
    }
    // Row pairs (tile2x8) share each activation load between two rows, but they read two
    // weight streams at once, and for formats with many bytes per weight DRAM then streams at
    // a fraction of the single-row rate (Q8_0 head at batch 4: 35 vs 100 GFLOP/s cold; pairs
    // with 4-wide tiles lost on every format). Measured: pairs win only with 8-wide tiles of
    // 4-bit formats. (Those are block formats, so the pair loop needs no column tail.)
    let pairs = D.chunksPerBlock == 1 && D.blockBytes <= 20
    // Results go to a small stack tile first and reach y one cache line per batch vector per
    // row group: storing each row's results straight to y put 8 stores per row at a stride
    // that, for the 49152-row head (yStride·4 a multiple of 4096), hit one L1 set and
    // 4K-aliased the loads (batch 8 ran at 72 instead of 112 GFLOP/s).
    withUnsafeTemporaryAllocation(of: Float.self, capacity: 8 * rowGroup) { buf in
        let tileOut = buf.baseAddress!
        var g = rows.lowerBound
        while g < rows.upperBound {
            let gEnd = min(g + rowGroup, rows.upperBound)
            var b = 0
            while b < a.batch {
                let left = a.batch - b
                let n = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1
                let xb = a.x + b * a.xStride
                var r = g
                while pairs && n == 8 && r + 2 <= gEnd {
                    tile2x8(D.self, a.base + r * a.rowBytes, a.rowBytes, xb, a.xStride, chunks, tileOut + (r - g), rowGroup, nib)
                    r += 2
                }
                while r < gEnd {
                    let row = a.base + r * a.rowBytes
                    let out = tileOut + (r - g)
                    switch n {
                    case 8: tile8(D.self, row, xb, a.xStride, chunks, out, rowGroup, nib)
                    case 4: tile4(D.self, row, xb, a.xStride, chunks, out, rowGroup, nib)
                    case 2: tile2(D.self, row, xb, a.xStride, chunks, out, rowGroup, nib)
                    default: out.pointee = dot1Row(D.self, row, xb, chunks, nib)
                    }
                    if a.cols % 32 != 0 {
                        for k in 0..<n { out[k * rowGroup] += tail(D.self, a, r, b + k) }
                    }
                    r += 1
                }
                for k in 0..<n {
                    let dst = a.y + (b + k) * a.yStride + g, src = tileOut + k * rowGroup
                    if gEnd - g == 16 {
                        UnsafeMutableRawPointer(dst).storeBytes(of: load16(src), as: SIMD16<Float>.self)
                    } else {
                        for i in 0..<(gEnd - g) { dst[i] = src[i] }
                    }
                }
                b += n
            }
            g = gEnd
        }
    }
}

/// Columns past the last full chunk (plain float formats only), done in scalar code.
@inline(__always)
private func tail<D: ChunkDecoder>(_: D.Type, _ a: MatMulArgs, _ r: Int, _ b: Int) -> Float {
    let start = a.cols & ~31
    if start == a.cols { return 0 }
    let row = a.base + r * a.rowBytes
    let x = (a.x + b * a.xStride).assumingMemoryBound(to: Float.self)
    var s: Float = 0
    for c in start..<a.cols { s += D.scalar(row, c) * x[c] }
    return s
}

// The accumulator counts below keep at least 4 independent FMA chains in flight per tile
// (FMA latency 4, two FMA pipes), so batch 1 and 2 split each sum into several partial sums.
// Batch 1 walks one row at a time: decoding two rows at once was no faster in registers and,
// for 960-byte rows (Q4 × 1536 columns), halved the DRAM streaming rate.

@inline(__always)
private func dot1Row<D: ChunkDecoder>(_: D.Type, _ w: UnsafeRawPointer, _ x: UnsafeRawPointer, _ chunks: Int, _ nib: Nibbles) -> Float {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
    if D.chunksPerBlock > 1 {
        // Super-blocks: even chunks into a0/a1, odd ones into a2/a3.
        var p = w, o = 0
        for _ in 0..<chunks / D.chunksPerBlock {
            var odd = false
            forEachChunk(D.self, p, nib) { lo, hi in
                if odd {
                    a2 = a2.addingProduct(lo, load16(x, o))
                    a3 = a3.addingProduct(hi, load16(x, o + 64))
                } else {
                    a0 = a0.addingProduct(lo, load16(x, o))
                    a1 = a1.addingProduct(hi, load16(x, o + 64))
                }
                odd.toggle()
                o += 128
            }
            p += D.blockBytes
        }
        return hsum((a0 + a1) + (a2 + a3))
    }
    var c = 0
    while c + 2 <= chunks {
        let (lo0, hi0) = decodeChunk(D.self, w + c * D.blockBytes, nib)
        let (lo1, hi1) = decodeChunk(D.self, w + (c + 1) * D.blockBytes, nib)
        a0 = a0.addingProduct(lo0, load16(x, 128 * c))
        a1 = a1.addingProduct(hi0, load16(x, 128 * c + 64))
        a2 = a2.addingProduct(lo1, load16(x, 128 * c + 128))
        a3 = a3.addingProduct(hi1, load16(x, 128 * c + 192))
        c += 2
    }
    while c < chunks {
        let (lo, hi) = decodeChunk(D.self, w + c * D.blockBytes, nib)
        a0 = a0.addingProduct(lo, load16(x, 128 * c))
        a1 = a1.addingProduct(hi, load16(x, 128 * c + 64))
        c += 1
    }
    return hsum((a0 + a1) + (a2 + a3))
}

/// Calls `body` with chunks 0..<chunksPerBlock of the block at `p`, in order. For the K-quants'
/// 8 chunks the calls are written out, so that the chunk index is a constant in each decode
/// (LLVM does not always unroll the loop: then the scales are read back from the stack by a
/// variable index, and every chunk re-loads bytes that its neighbour already loaded).
/// The 4- and 8-wide tiles pass `unrolled: false`: written out, their 8–16 accumulators and
/// the block's hoisted quant loads exceed the registers, and the spills cost more than the loop.
@inline(__always)
private func forEachChunk<D: ChunkDecoder>(_: D.Type, _ p: UnsafeRawPointer, _ nib: Nibbles, unrolled: Bool = true,
                                           _ body: (SIMD16<Float>, SIMD16<Float>) -> Void) {
    let s = D.scales(p)
    if unrolled && D.chunksPerBlock == 8 {
        var (lo, hi) = D.decode(p, s, 0, nib); body(lo, hi)
        (lo, hi) = D.decode(p, s, 1, nib); body(lo, hi)
        (lo, hi) = D.decode(p, s, 2, nib); body(lo, hi)
        (lo, hi) = D.decode(p, s, 3, nib); body(lo, hi)
        (lo, hi) = D.decode(p, s, 4, nib); body(lo, hi)
        (lo, hi) = D.decode(p, s, 5, nib); body(lo, hi)
        (lo, hi) = D.decode(p, s, 6, nib); body(lo, hi)
        (lo, hi) = D.decode(p, s, 7, nib); body(lo, hi)
    } else {
        for j in 0..<D.chunksPerBlock {
            let (lo, hi) = D.decode(p, s, j, nib)
            body(lo, hi)
        }
    }
}

/// The only chunk of a one-chunk block.
@inline(__always)
private func decodeChunk<D: ChunkDecoder>(_: D.Type, _ p: UnsafeRawPointer, _ nib: Nibbles) -> (SIMD16<Float>, SIMD16<Float>) {
    D.decode(p, D.scales(p), 0, nib)
}

@inline(__always)
private func tile2<D: ChunkDecoder>(_: D.Type, _ w: UnsafeRawPointer, _ x: UnsafeRawPointer, _ xs: Int,
                                    _ chunks: Int, _ y: UnsafeMutablePointer<Float>, _ ys: Int, _ nib: Nibbles) {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), b0 = SIMD16<Float>(), b1 = SIMD16<Float>()
    let xa = x, xb = x + xs
    var p = w, o = 0
    for _ in 0..<chunks / D.chunksPerBlock {
        forEachChunk(D.self, p, nib) { lo, hi in
            a0 = a0.addingProduct(lo, load16(xa, o)); a1 = a1.addingProduct(hi, load16(xa, o + 64))
            b0 = b0.addingProduct(lo, load16(xb, o)); b1 = b1.addingProduct(hi, load16(xb, o + 64))
            o += 128
        }
        p += D.blockBytes
    }
    y[0] = hsum(a0 + a1)
    y[ys] = hsum(b0 + b1)
}

@inline(__always)
private func tile4<D: ChunkDecoder>(_: D.Type, _ w: UnsafeRawPointer, _ x: UnsafeRawPointer, _ xs: Int,
                                    _ chunks: Int, _ y: UnsafeMutablePointer<Float>, _ ys: Int, _ nib: Nibbles) {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), b0 = SIMD16<Float>(), b1 = SIMD16<Float>()
    var c0 = SIMD16<Float>(), c1 = SIMD16<Float>(), d0 = SIMD16<Float>(), d1 = SIMD16<Float>()
    let xa = x, xb = x + xs, xc = x + 2 * xs, xd = x + 3 * xs
    var p = w, o = 0
    for _ in 0..<chunks / D.chunksPerBlock {
        forEachChunk(D.self, p, nib, unrolled: false) { lo, hi in
            a0 = a0.addingProduct(lo, load16(xa, o)); a1 = a1.addingProduct(hi, load16(xa, o + 64))
            b0 = b0.addingProduct(lo, load16(xb, o)); b1 = b1.addingProduct(hi, load16(xb, o + 64))
            c0 = c0.addingProduct(lo, load16(xc, o)); c1 = c1.addingProduct(hi, load16(xc, o + 64))
            d0 = d0.addingProduct(lo, load16(xd, o)); d1 = d1.addingProduct(hi, load16(xd, o + 64))
            o += 128
        }
        p += D.blockBytes
    }
    y[0] = hsum(a0 + a1)
    y[ys] = hsum(b0 + b1)
    y[2 * ys] = hsum(c0 + c1)
    y[3 * ys] = hsum(d0 + d1)
}

@inline(__always)
private func tile8<D: ChunkDecoder>(_: D.Type, _ w: UnsafeRawPointer, _ x: UnsafeRawPointer, _ xs: Int,
                                    _ chunks: Int, _ y: UnsafeMutablePointer<Float>, _ ys: Int, _ nib: Nibbles) {
    var a = SIMD16<Float>(), b = SIMD16<Float>(), c = SIMD16<Float>(), d = SIMD16<Float>()
    var e = SIMD16<Float>(), f = SIMD16<Float>(), g = SIMD16<Float>(), h = SIMD16<Float>()
    let x0 = x, x1 = x + xs, x2 = x + 2 * xs, x3 = x + 3 * xs
    let x4 = x + 4 * xs, x5 = x + 5 * xs, x6 = x + 6 * xs, x7 = x + 7 * xs
    var p = w, o = 0
    for _ in 0..<chunks / D.chunksPerBlock {
        forEachChunk(D.self, p, nib, unrolled: false) { lo, hi in
            a = a.addingProduct(lo, load16(x0, o)).addingProduct(hi, load16(x0, o + 64))
            b = b.addingProduct(lo, load16(x1, o)).addingProduct(hi, load16(x1, o + 64))
            c = c.addingProduct(lo, load16(x2, o)).addingProduct(hi, load16(x2, o + 64))
            d = d.addingProduct(lo, load16(x3, o)).addingProduct(hi, load16(x3, o + 64))
            e = e.addingProduct(lo, load16(x4, o)).addingProduct(hi, load16(x4, o + 64))
            f = f.addingProduct(lo, load16(x5, o)).addingProduct(hi, load16(x5, o + 64))
            g = g.addingProduct(lo, load16(x6, o)).addingProduct(hi, load16(x6, o + 64))
            h = h.addingProduct(lo, load16(x7, o)).addingProduct(hi, load16(x7, o + 64))
            o += 128
        }
        p += D.blockBytes
    }
    y[0] = hsum(a); y[ys] = hsum(b); y[2 * ys] = hsum(c); y[3 * ys] = hsum(d)
    y[4 * ys] = hsum(e); y[5 * ys] = hsum(f); y[6 * ys] = hsum(g); y[7 * ys] = hsum(h)
}

@inline(__always)
private func tile2x8<D: ChunkDecoder>(_: D.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ x: UnsafeRawPointer, _ xs: Int,
                                      _ chunks: Int, _ y: UnsafeMutablePointer<Float>, _ ys: Int, _ nib: Nibbles) {
    var a0 = SIMD16<Float>(), b0 = SIMD16<Float>(), c0 = SIMD16<Float>(), d0 = SIMD16<Float>()
    var e0 = SIMD16<Float>(), f0 = SIMD16<Float>(), g0 = SIMD16<Float>(), h0 = SIMD16<Float>()
    var a1 = SIMD16<Float>(), b1 = SIMD16<Float>(), c1 = SIMD16<Float>(), d1 = SIMD16<Float>()
    var e1 = SIMD16<Float>(), f1 = SIMD16<Float>(), g1 = SIMD16<Float>(), h1 = SIMD16<Float>()
    let w1 = w + rowBytes
    for k in 0..<chunks {
        let (lo0, hi0) = decodeChunk(D.self, w + k * D.blockBytes, nib)
        let (lo1, hi1) = decodeChunk(D.self, w1 + k * D.blockBytes, nib)
        let o = 128 * k
        var p = x + o
        var v = load16(p), u = load16(p, 64)
        a0 = a0.addingProduct(lo0, v).addingProduct(hi0, u); a1 = a1.addingProduct(lo1, v).addingProduct(hi1, u)
        p += xs; v = load16(p); u = load16(p, 64)
        b0 = b0.addingProduct(lo0, v).addingProduct(hi0, u); b1 = b1.addingProduct(lo1, v).addingProduct(hi1, u)
        p += xs; v = load16(p); u = load16(p, 64)
        c0 = c0.addingProduct(lo0, v).addingProduct(hi0, u); c1 = c1.addingProduct(lo1, v).addingProduct(hi1, u)
        p += xs; v = load16(p); u = load16(p, 64)
        d0 = d0.addingProduct(lo0, v).addingProduct(hi0, u); d1 = d1.addingProduct(lo1, v).addingProduct(hi1, u)
        p += xs; v = load16(p); u = load16(p, 64)
        e0 = e0.addingProduct(lo0, v).addingProduct(hi0, u); e1 = e1.addingProduct(lo1, v).addingProduct(hi1, u)
        p += xs; v = load16(p); u = load16(p, 64)
        f0 = f0.addingProduct(lo0, v).addingProduct(hi0, u); f1 = f1.addingProduct(lo1, v).addingProduct(hi1, u)
        p += xs; v = load16(p); u = load16(p, 64)
        g0 = g0.addingProduct(lo0, v).addingProduct(hi0, u); g1 = g1.addingProduct(lo1, v).addingProduct(hi1, u)
        p += xs; v = load16(p); u = load16(p, 64)
        h0 = h0.addingProduct(lo0, v).addingProduct(hi0, u); h1 = h1.addingProduct(lo1, v).addingProduct(hi1, u)
    }
    y[0] = hsum(a0); y[ys] = hsum(b0); y[2 * ys] = hsum(c0); y[3 * ys] = hsum(d0)
    y[4 * ys] = hsum(e0); y[5 * ys] = hsum(f0); y[6 * ys] = hsum(g0); y[7 * ys] = hsum(h0)
    y[1] = hsum(a1); y[ys + 1] = hsum(b1); y[2 * ys + 1] = hsum(c1); y[3 * ys + 1] = hsum(d1)
    y[4 * ys + 1] = hsum(e1); y[5 * ys + 1] = hsum(f1); y[6 * ys + 1] = hsum(g1); y[7 * ys + 1] = hsum(h1)
}

