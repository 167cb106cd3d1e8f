/// y[b * yStride + r] = Σ_c W[r, c] · x[b * xStride + c] for r in `rows`, b in 0..<batch.
///
/// Reads each weight row once for the whole batch: decode steps are bandwidth-bound, so a
/// batch of B tokens costs about one pass over the (quantized) weights.
public func quantizedMatMul(
    _ w: QuantizedMatrix,
    x: UnsafePointer<Float>, xStride: Int, batch: Int,
    y: UnsafeMutablePointer<Float>, yStride: Int,
    rows: Range<Int>
) {
    let tmp = UnsafeMutablePointer<Float>.allocate(capacity: w.cols)
    defer { tmp.deallocate() }
    for r in rows {
        dequantize(w.format, w.row(r), tmp, count: w.cols)
        for b in 0..<batch {
            y[b * yStride + r] = dot(tmp, x + b * xStride, w.cols)
        }
    }
}
