import Testing
import Kernels

/// Columns per format: block formats need multiples of 32; float formats also get a tail.
private func testCols(_ f: WeightFormat) -> [Int] { f.blockSize == 1 ? [96, 72] : [64, 160] }

@Suite struct QuantMatMulTests {
    /// Every format × batch size × row range against Σ referenceWeight·x in Double.
    /// Tolerance: 1e-5 of Σ|w·x| (fp32 summation in a different order) — the kernel is exact
    /// otherwise, since weights are decoded to the same floats the reference computes.
    @Test(arguments: allFormats)
    func matchesScalarReference(format: WeightFormat) {
        var rng = TestRNG(42)
        for cols in testCols(format) {
            let rows = 37
            let bytes = randomMatrix(format, rows: rows, cols: cols, &rng)
            for batch in [1, 2, 3, 5, 8, 17, 32] {
                let xStride = cols + 3, yStride = rows + 5
                let x = randomVector(batch * xStride, &rng)
                for range in [0..<rows, 3..<30, 7..<8, 1..<36] {
                    var y = [Float](repeating: .nan, count: batch * yStride)
                    bytes.withUnsafeBytes { wb in
                        let w = QuantizedMatrix(format: format, rows: rows, cols: cols, base: wb.baseAddress!)
                        quantizedMatMul(w, x: x, xStride: xStride, batch: batch, y: &y, yStride: yStride, rows: range)
                        for b in 0..<batch {
                            for r in 0..<yStride {
                                let got = y[b * yStride + r]
                                guard range.contains(r) else {
                                    #expect(got.isNaN, "wrote outside rows: \(format) r=\(r)")
                                    continue
                                }
                                var ref = 0.0, mag = 0.0
                                for c in 0..<cols {
                                    let p = Double(referenceWeight(format, w.row(r), c)) * Double(x[b * xStride + c])
                                    ref += p; mag += abs(p)
                                }
                                #expect(abs(Double(got) - ref) <= 1e-5 * mag + 1e-7,
                                        "\(format) cols=\(cols) batch=\(batch) row=\(r) b=\(b): \(got) vs \(ref)")
                            }
                        }
                    }
                }
            }
        }
    }

    @Test func poolOverloadCoversAllRows() {
        var rng = TestRNG(9)
        let pool = ThreadPool(threadCount: 3)
        for (rows, batch) in [(100, 1), (577, 4), (31, 2)] {
            let cols = 64
            let bytes = randomMatrix(.q4_1, rows: rows, cols: cols, &rng)
            let x = randomVector(batch * cols, &rng)
            var y = [Float](repeating: .nan, count: batch * rows)
            var ref = [Float](repeating: .nan, count: batch * rows)
            bytes.withUnsafeBytes { wb in
                let w = QuantizedMatrix(format: .q4_1, rows: rows, cols: cols, base: wb.baseAddress!)
                quantizedMatMul(w, x: x, xStride: cols, batch: batch, y: &y, yStride: rows, pool: pool)
                quantizedMatMul(w, x: x, xStride: cols, batch: batch, y: &ref, yStride: rows, rows: 0..<rows)
            }
            #expect(y == ref)
        }
    }

    /// Dequantization produces exactly the reference values (Q4_1 may differ by one rounding:
    /// the kernel fuses d·q + m).
    @Test(arguments: allFormats)
    func dequantizeMatchesReference(format: WeightFormat) {
        var rng = TestRNG(7)
        let cols = format.blockSize == 1 ? 72 : 96, rows = 5
        let bytes = randomMatrix(format, rows: rows, cols: cols, &rng)
        var out = [Float](repeating: 0, count: rows * cols)
        var viaPool = [Float](repeating: 0, count: rows * cols)
        bytes.withUnsafeBytes { wb in
            let w = QuantizedMatrix(format: format, rows: rows, cols: cols, base: wb.baseAddress!)
            dequantize(format, wb.baseAddress!, &out, count: rows * cols)
            dequantize(w, into: &viaPool, pool: ThreadPool(threadCount: 2))
            for r in 0..<rows {
                for c in 0..<cols {
                    let ref = referenceWeight(format, w.row(r), c), got = out[r * cols + c]
                    // d·q rounds before + m in the reference: half an ulp of d·q (< 2) apart at most.
                    let tol: Float = format == .q4_1 ? 2e-7 : 0
                    #expect(abs(got - ref) <= tol, "\(format) [\(r),\(c)] \(got) vs \(ref)")
                }
            }
        }
        #expect(out == viaPool)
    }

    /// Block scales are decoded without F16C (see `scaleFromHalf`): check every finite fp16
    /// pattern, zero and subnormals included, as Q8_0 and Q4_1 scales.
    @Test func everyFiniteHalfScaleDecodesExactly() {
        let patterns = (0...UInt16.max).filter { ($0 & 0x7C00) != 0x7C00 }
        var q8 = [UInt8](), q41 = [UInt8]()
        for (i, h) in patterns.enumerated() {
            q8 += [UInt8(h & 0xFF), UInt8(h >> 8)] + (0..<32).map { UInt8(truncatingIfNeeded: i &+ $0 &* 37) }
            let m = patterns[(i * 7919) % patterns.count]
            q41 += [UInt8(h & 0xFF), UInt8(h >> 8), UInt8(m & 0xFF), UInt8(m >> 8)]
                + (0..<16).map { UInt8(truncatingIfNeeded: i &* 3 &+ $0 &* 11) }
        }
        for (format, bytes) in [(WeightFormat.q8_0, q8), (.q4_1, q41)] {
            let n = 32 * patterns.count
            var out = [Float](repeating: 0, count: n)
            bytes.withUnsafeBytes { b in
                dequantize(format, b.baseAddress!, &out, count: n)
                var bad = 0
                for i in 0..<n {
                    let ref = referenceWeight(format, b.baseAddress!, i)
                    // Q4_1 fuses d·q + m (one rounding instead of two): d·q's rounding,
                    // |d·q| ≤ 15|d|, plus the sum's.
                    let d = Float(Float16(bitPattern: patterns[i / 32]))
                    let tol: Float = format == .q4_1 ? (16 * abs(d)).ulp + abs(ref).ulp : 0
                    if !(abs(out[i] - ref) <= tol) { bad += 1 }
                }
                #expect(bad == 0, "\(format): \(bad) mismatches")
            }
        }
    }
}
