import Testing
import Kernels

/// The Q5 and K-quant formats, whose decoding GGUFTests checks block for block against the
/// gguf package: here the mat-mul must equal dequantize-then-dot.
@Suite struct BlockFormatTests {
    /// Every format × odd row counts × batch 1...5 (and the 8-wide tiles) × row ranges against
    /// Σ dequantize(W)·x in Double, within fp32 summation error (1e-5 of Σ|w·x|).
    @Test(arguments: fixtureFormats)
    func matMulMatchesDequantizedDot(format: WeightFormat) {
        var rng = TestRNG(11)
        let blocks = format.blockSize == 256 ? [1, 3] : [2, 5]
        for cols in blocks.map({ $0 * format.blockSize }) {
            for rows in [1, 17, 37] {
                let bytes = randomMatrix(format, rows: rows, cols: cols, &rng)
                var dense = [Float](repeating: 0, count: rows * cols)
                bytes.withUnsafeBytes { dequantize(format, $0.baseAddress!, &dense, count: rows * cols) }
                #expect(dense.allSatisfy { $0.isFinite })
                for batch in [1, 2, 3, 4, 5, 8, 11] {
                    let xStride = cols + 16, yStride = rows + 3
                    let x = randomVector(batch * xStride, &rng)
                    for range in [0..<rows, (rows / 3)..<rows, 0..<(rows + 1) / 2] where !range.isEmpty {
                        var y = [Float](repeating: .nan, count: batch * yStride)
                        bytes.withUnsafeBytes { wb in
                            let w = QuantizedMatrix(format: format, rows: rows, cols: cols, base: wb.baseAddress!)
                            quantizedMatMul(w, x: x, xStride: xStride, batch: batch, y: &y, yStride: yStride, rows: range)
                        }
                        var bad = 0
                        for b in 0..<batch {
                            for r in 0..<yStride {
                                let got = y[b * yStride + r]
                                guard range.contains(r) else { if !got.isNaN { bad += 1 }; continue }
                                var ref = 0.0, mag = 0.0
                                for c in 0..<cols {
                                    let p = Double(dense[r * cols + c]) * Double(x[b * xStride + c])
                                    ref += p; mag += abs(p)
                                }
                                if !(abs(Double(got) - ref) <= 1e-5 * mag + 1e-7) { bad += 1 }
                            }
                        }
                        #expect(bad == 0, "\(format) rows=\(rows) cols=\(cols) batch=\(batch) range=\(range)")
                    }
                }
            }
        }
    }

    @Test(arguments: fixtureFormats)
    func poolSplitsAgree(format: WeightFormat) {
        var rng = TestRNG(12)
        let pool = ThreadPool(threadCount: 3)
        let rows = 101, cols = 2 * format.blockSize * (format.blockSize == 256 ? 1 : 4)
        let bytes = randomMatrix(format, rows: rows, cols: cols, &rng)
        var one = [Float](repeating: 0, count: rows * cols), viaPool = one
        for batch in [1, 3] {
            let x = randomVector(batch * cols, &rng)
            var y = [Float](repeating: .nan, count: batch * rows), ref = y
            bytes.withUnsafeBytes { wb in
                let w = QuantizedMatrix(format: format, rows: rows, cols: cols, base: wb.baseAddress!)
                quantizedMatMul(w, x: x, xStride: cols, batch: batch, y: &y, yStride: rows, pool: pool)
                quantizedMatMul(w, x: x, xStride: cols, batch: batch, y: &ref, yStride: rows, rows: 0..<rows)
                dequantize(format, wb.baseAddress!, &one, count: rows * cols)
                dequantize(w, into: &viaPool, pool: pool)
            }
            #expect(y == ref)
        }
        #expect(one == viaPool)
    }

    @Test func layoutConstants() {
        for f in fixtureFormats {
            #expect(f.blockSize == (f.description.hasSuffix("_K") ? 256 : 32))
        }
        #expect([WeightFormat.q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K].map(\.blockBytes) == [22, 24, 84, 110, 144, 176, 210])
    }
}
