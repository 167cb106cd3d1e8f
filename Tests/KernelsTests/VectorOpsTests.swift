import Testing
import Foundation
import Kernels

@Suite struct VectorOpsTests {
    /// Relative error of fastExp below 2.5e-7 over the whole useful range, checked on a dense
    /// grid against Double exp; overflow/underflow ends saturate as documented.
    @Test func expAccuracy() {
        var worst = 0.0
        var x: Float = -87.3
        while x < 88.7 {
            var v = SIMD16<Float>()
            for k in 0..<16 { v[k] = x + Float(k) * 0.000_37 }
            let e = fastExp(v)
            for k in 0..<16 {
                let ref = Foundation.exp(Double(v[k]))
                worst = max(worst, abs(Double(e[k]) - ref) / ref)
            }
            x += 0.0061
        }
        #expect(worst < 2.5e-7, "max relative error \(worst)")
        let edge = fastExp(SIMD16<Float>(-.infinity, -1000, -88, 89, .infinity, 0, 1, -1, 88.72, 0, 0, 0, 0, 0, 0, 0))
        #expect(edge[0] == 0 && edge[1] == 0 && edge[2] == 0)
        #expect(edge[3] == .infinity && edge[4] == .infinity)
        #expect(edge[5] == 1)
        #expect(abs(edge[6] - Float(M_E)) <= Float(M_E).ulp)
        #expect(edge[8].isFinite && edge[8] > 3.3e38)
    }

    @Test(arguments: [1, 5, 16, 33, 100, 1000])
    func softmaxMatchesReference(n: Int) {
        var rng = TestRNG(UInt64(n))
        var x = randomVector(n, &rng, scale: 20)
        if n > 4 { x[3] = -.infinity }
        let mx = x.max()!
        let e = x.map { Foundation.exp(Double($0 - mx)) }
        let s = e.reduce(0, +)
        softmaxInPlace(&x, n)
        #expect(abs(x.reduce(0, +) - 1) < 1e-5)
        for i in 0..<n { #expect(abs(Double(x[i]) - e[i] / s) <= 1e-6 * e[i] / s + 1e-9) }
        if n > 4 { #expect(x[3] == 0) }
    }

    @Test func siluMulMatchesReference() {
        var rng = TestRNG(3)
        let n = 77
        let g = randomVector(n, &rng, scale: 12), u = randomVector(n, &rng)
        var out = [Float](repeating: 0, count: n)
        siluMul(g, u, out: &out, n)
        for i in 0..<n {
            let ref = Double(g[i]) / (1 + Foundation.exp(-Double(g[i]))) * Double(u[i])
            #expect(abs(Double(out[i]) - ref) <= 1e-6 * abs(ref) + 1e-12)
        }
    }

    @Test func rmsNormMatchesReference() {
        var rng = TestRNG(4)
        for n in [7, 64, 576, 579] {
            let x = randomVector(n, &rng, scale: 3), w = randomVector(n, &rng)
            var out = [Float](repeating: 0, count: n)
            rmsNorm(x, weight: w, out: &out, n, eps: 1e-5)
            let ms = x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(n)
            let scale = 1 / (ms + 1e-5).squareRoot()
            for i in 0..<n {
                let ref = Double(x[i]) * scale * Double(w[i])
                #expect(abs(Double(out[i]) - ref) <= 1e-5 * abs(ref) + 1e-7)
            }
        }
    }

    @Test(arguments: [8, 64, 70])
    func ropeMatchesReference(headDim: Int) {
        var rng = TestRNG(5)
        let heads = 3, half = headDim / 2
        let x = randomVector(heads * headDim, &rng)
        let angles = (0..<half).map { Float($0) * 0.37 + 0.1 }
        let c = angles.map { Foundation.cos($0) }, s = angles.map { Foundation.sin($0) }
        var adj = x, neox = x
        ropeAdjacentPairs(&adj, heads: heads, headDim: headDim, cos: c, sin: s)
        ropeHalfSplit(&neox, heads: heads, headDim: headDim, cos: c, sin: s)
        for h in 0..<heads {
            let o = h * headDim
            for i in 0..<half {
                let a = x[o + 2 * i], b = x[o + 2 * i + 1]
                #expect(abs(adj[o + 2 * i] - (a * c[i] - b * s[i])) < 1e-6)
                #expect(abs(adj[o + 2 * i + 1] - (a * s[i] + b * c[i])) < 1e-6)
                let p = x[o + i], q = x[o + half + i]
                #expect(abs(neox[o + i] - (p * c[i] - q * s[i])) < 1e-6)
                #expect(abs(neox[o + half + i] - (p * s[i] + q * c[i])) < 1e-6)
            }
        }
    }

    @Test func dotAndElementwise() {
        var rng = TestRNG(6)
        for n in [0, 1, 15, 16, 63, 64, 200, 1537] {
            let a = randomVector(n, &rng), b = randomVector(n, &rng)
            let ref = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let mag = zip(a, b).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
            #expect(abs(Double(dot(a, b, n)) - ref) <= 1e-6 * mag + 1e-9)
            var y = a
            addInPlace(&y, b, n)
            #expect(y == zip(a, b).map { $0 + $1 })
            y = a
            axpy(0.5, b, &y, n)
            for i in 0..<n { #expect(abs(y[i] - (a[i] + 0.5 * b[i])) <= 1e-6) }
            y = a
            scaleInPlace(&y, 3, n)
            #expect(y == a.map { $0 * 3 })
        }
    }

    @Test func argmaxFirstOfTies() {
        var rng = TestRNG(8)
        for n in [1, 5, 31, 32, 100, 49_152] {
            var x = randomVector(n, &rng)
            let i = n / 3, j = n - 1
            x[i] = 5
            x[j] = 5
            #expect(argmax(x, n) == i)
            x[i] = 0
            #expect(argmax(x, n) == j)
        }
    }
}
