/// Expands `count` values (a multiple of the format's block size) from `src` into floats.
///
/// Exact: each value is the format's d·q (+ m), rounded once (K-quants: (d·sc)·q (− dmin·m)). Used at load time to make the
/// fp32 copies that prefill hands to sgemm.
public func dequantize(_ format: WeightFormat, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, count: Int) {
    precondition(count % format.blockSize == 0)
    switch format {
    case .f32: dst.update(from: src.assumingMemoryBound(to: Float.self), count: count)
    case .f16: expand(DecodeF16.self, src, dst, count)
    case .bf16: expand(DecodeBF16.self, src, dst, count)
    case .q8_0: expand(DecodeQ8_0.self, src, dst, count)
    case .q4_0: expand(DecodeQ4_0.self, src, dst, count)
    case .q4_1: expand(DecodeQ4_1.self, src, dst, count)
    case .q5_0: expand(DecodeQ5_0.self, src, dst, count)
    case .q5_1: expand(DecodeQ5_1.self, src, dst, count)
    case .q2_K: expand(DecodeQ2_K.self, src, dst, count)
    case .q3_K: expand(DecodeQ3_K.self, src, dst, count)
    case .q4_K: expand(DecodeQ4_K.self, src, dst, count)
    case .q5_K: expand(DecodeQ5_K.self, src, dst, count)
    case .q6_K: expand(DecodeQ6_K.self, src, dst, count)
    }
}

/// Dequantizes a whole matrix into a row-major `[rows][cols]` fp32 buffer, rows split over
/// the pool's threads.
public func dequantize(_ w: QuantizedMatrix, into dst: UnsafeMutablePointer<Float>, pool: ThreadPool) {
    let n = pool.threadCount
    pool.run { t in
        let r = ThreadPool.split(w.rows, part: t, of: n)
        // Rows are contiguous in every format, so a slice of rows is one run of blocks.
        if !r.isEmpty {
            dequantize(w.format, w.row(r.lowerBound), dst + r.lowerBound * w.cols, count: r.count * w.cols)
        }
    }
}

@inline(never)
private func expand<D: ChunkDecoder>(_: D.Type, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
    let out = UnsafeMutableRawPointer(dst)
    let chunks = count / 32
    let nib = Nibbles.make()
    var p = src, o = 0
    for _ in 0..<chunks / D.chunksPerBlock {
        let s = D.scales(p)
        for j in 0..<D.chunksPerBlock {
            let (lo, hi) = D.decode(p, s, j, nib)
            store16(lo, out, o)
            store16(hi, out, o + 64)
            o += 128
        }
        p += D.blockBytes
    }
    for i in (chunks * 32)..<count { dst[i] = D.scalar(src, i) }
}
