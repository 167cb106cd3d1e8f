/// Expands `count` values (a multiple of the format's block size) from `src` into floats.
///
/// Exact: each value is the format's d·q (+ m), rounded once. Used at load time to make the
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
    for c in 0..<chunks {
        let (lo, hi) = D.decode(src + c * D.chunkBytes, nib)
        store16(lo, out, 128 * c)
        store16(hi, out, 128 * c + 64)
    }
    for i in (chunks * 32)..<count { dst[i] = D.scalar(src, i) }
}
