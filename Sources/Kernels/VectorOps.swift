// Element-wise and reduction kernels over fp32 vectors, 16 lanes at a time.
//
// Reductions keep several independent accumulators so that consecutive FMAs/adds do not wait
// on each other's latency; results therefore differ from a left-to-right scalar sum by
// rounding only.

@inline(__always) private func ld(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD16<Float> {
    UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self)
}

@inline(__always) private func st(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
    UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: SIMD16<Float>.self)
}

@inline(__always) private func vmax(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
    a.replacing(with: b, where: b .> a)
}

/// Largest lane (the stdlib's `max()` is a scalar loop with NaN handling).
@inline(__always) private func hmax(_ v: SIMD16<Float>) -> Float {
    let a = v.lowHalf.replacing(with: v.highHalf, where: v.highHalf .> v.lowHalf)
    let b = a.lowHalf.replacing(with: a.highHalf, where: a.highHalf .> a.lowHalf)
    let c = b.lowHalf.replacing(with: b.highHalf, where: b.highHalf .> b.lowHalf)
    return Swift.max(c[0], c[1])
}

/// Σ a[i] b[i]
public func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>()
    var i = 0
    while i + 64 <= n {
        s0 = s0.addingProduct(ld(a, i), ld(b, i))
        s1 = s1.addingProduct(ld(a, i + 16), ld(b, i + 16))
        s2 = s2.addingProduct(ld(a, i + 32), ld(b, i + 32))
        s3 = s3.addingProduct(ld(a, i + 48), ld(b, i + 48))
        i += 64
    }
    while i + 16 <= n {
        s0 = s0.addingProduct(ld(a, i), ld(b, i))
        i += 16
    }
    var s = hsum((s0 + s1) + (s2 + s3))
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// Σ x[i]²
private func sumSquares(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var s0 = SIMD16<Float>(), s1 = SIMD16<Float>()
    var i = 0
    while i + 32 <= n {
        let a = ld(x, i), b = ld(x, i + 16)
        s0 = s0.addingProduct(a, a)
        s1 = s1.addingProduct(b, b)
        i += 32
    }
    while i + 16 <= n { let a = ld(x, i); s0 = s0.addingProduct(a, a); i += 16 }
    var s = hsum(s0 + s1)
    while i < n { s += x[i] * x[i]; i += 1 }
    return s
}

/// out[i] = x[i] / rms(x) * weight[i]. `out` may be `x`.
public func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, _ n: Int, eps: Float) {
    let scale = 1 / (sumSquares(x, n) / Float(n) + eps).squareRoot()
    let sv = SIMD16<Float>(repeating: scale)
    var i = 0
    while i + 16 <= n { st(ld(x, i) * sv * ld(weight, i), out, i); i += 16 }
    while i < n { out[i] = x[i] * scale * weight[i]; i += 1 }
}

/// x = softmax(x), numerically stable. Entries of -inf (masked) become exactly 0.
public func softmaxInPlace(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
    if n <= 0 { return }
    var mx = -Float.infinity
    var i = 0
    if n >= 16 {
        var m0 = ld(x, 0)
        i = 16
        while i + 16 <= n { m0 = vmax(m0, ld(x, i)); i += 16 }
        mx = hmax(m0)
    }
    while i < n { mx = Swift.max(mx, x[i]); i += 1 }
    let mv = SIMD16<Float>(repeating: mx)
    var acc = SIMD16<Float>()
    i = 0
    while i + 16 <= n {
        let e = fastExp(ld(x, i) - mv)
        st(e, x, i)
        acc += e
        i += 16
    }
    var s = hsum(acc)
    while i < n {
        let e = fastExp(SIMD16<Float>(repeating: x[i] - mx))[0]
        x[i] = e
        s += e
        i += 1
    }
    scaleInPlace(x, 1 / s, n)
}

/// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + e^-g). `out` may alias either input.
public func siluMul(_ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    while i + 16 <= n {
        let g = ld(gate, i)
        st(g / (fastExp(-g) + 1) * ld(up, i), out, i)
        i += 16
    }
    while i < n {
        let g = gate[i]
        out[i] = g / (fastExp(SIMD16<Float>(repeating: -g))[0] + 1) * up[i]
        i += 1
    }
}

/// out[i] = gelu(gate[i]) * up[i] with GELU's tanh approximation (GeGLU: Gemma), written as
/// gelu(g) = g · sigmoid(2·√(2/π)·(g + 0.044715·g³)), which equals 0.5·g·(1 + tanh(…)).
/// `out` may alias either input.
public func geluMul(_ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, _ n: Int) {
    let c = SIMD16<Float>(repeating: -2 * 0.797_884_560_8), k = SIMD16<Float>(repeating: 0.044_715)
    var i = 0
    while i + 16 <= n {
        let g = ld(gate, i)
        st(g / (fastExp(c * (g + k * g * g * g)) + 1) * ld(up, i), out, i)
        i += 16
    }
    while i < n {
        let g = SIMD16<Float>(repeating: gate[i])
        out[i] = (g / (fastExp(c * (g + k * g * g * g)) + 1))[0] * up[i]
        i += 1
    }
}

/// y[i] += x[i]
public func addInPlace(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
    var i = 0
    while i + 16 <= n { st(ld(y, i) + ld(x, i), y, i); i += 16 }
    while i < n { y[i] += x[i]; i += 1 }
}

/// y[i] += alpha * x[i]
public func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let av = SIMD16<Float>(repeating: alpha)
    var i = 0
    while i + 16 <= n { st(ld(y, i).addingProduct(av, ld(x, i)), y, i); i += 16 }
    while i < n { y[i] += alpha * x[i]; i += 1 }
}

/// x[i] *= alpha
public func scaleInPlace(_ x: UnsafeMutablePointer<Float>, _ alpha: Float, _ n: Int) {
    let av = SIMD16<Float>(repeating: alpha)
    var i = 0
    while i + 16 <= n { st(ld(x, i) * av, x, i); i += 16 }
    while i < n { x[i] *= alpha; i += 1 }
}

/// Rotates adjacent pairs (x[2i], x[2i+1]) of each of `heads` vectors of `headDim` floats
/// (stride `headDim`) by the angles in `cos`/`sin` (`headDim / 2` entries for this position).
/// This is ggml's "normal" RoPE, used by llama-family GGUF files.
public func ropeAdjacentPairs(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int,
                              cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
    let pairs = headDim / 2
    for h in 0..<heads {
        let v = x + h * headDim
        var i = 0
        // 8 pairs per step: even lanes are the first elements, odd lanes the second.
        while i + 8 <= pairs {
            let w = ld(v, 2 * i)
            let a = w.evenHalf, b = w.oddHalf
            let c = UnsafeRawPointer(cos + i).loadUnaligned(as: SIMD8<Float>.self)
            let s = UnsafeRawPointer(sin + i).loadUnaligned(as: SIMD8<Float>.self)
            let ra = a * c - b * s, rb = a * s + b * c
            var r = SIMD16<Float>()
            for k in 0..<8 { r[2 * k] = ra[k]; r[2 * k + 1] = rb[k] }
            st(r, v, 2 * i)
            i += 8
        }
        while i < pairs {
            let a = v[2 * i], b = v[2 * i + 1]
            v[2 * i] = a * cos[i] - b * sin[i]
            v[2 * i + 1] = a * sin[i] + b * cos[i]
            i += 1
        }
    }
}

/// Rotates pairs (x[i], x[i + headDim/2]) of each head by `cos`/`sin` (`headDim / 2` entries):
/// ggml's "NeoX" RoPE, used by e.g. Qwen2 and GPT-NeoX GGUF files.
public func ropeHalfSplit(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int,
                          cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
    let half = headDim / 2
    for h in 0..<heads {
        let v = x + h * headDim
        var i = 0
        while i + 16 <= half {
            let a = ld(v, i), b = ld(v, half + i), c = ld(cos, i), s = ld(sin, i)
            st(a * c - b * s, v, i)
            st(a * s + b * c, v, half + i)
            i += 16
        }
        while i < half {
            let a = v[i], b = v[half + i]
            v[i] = a * cos[i] - b * sin[i]
            v[half + i] = a * sin[i] + b * cos[i]
            i += 1
        }
    }
}

/// Index of the largest value (first on ties).
public func argmax(_ x: UnsafePointer<Float>, _ n: Int) -> Int {
    var best = 0
    var i = 1
    if n >= 32 {
        // Find the maximum with vector compares, then the first position that holds it.
        var m = ld(x, 0)
        i = 16
        while i + 16 <= n { m = vmax(m, ld(x, i)); i += 16 }
        var mx = hmax(m)
        while i < n { if x[i] > mx { mx = x[i] }; i += 1 }
        i = 0
        while i + 16 <= n {
            if any(ld(x, i) .== SIMD16<Float>(repeating: mx)) { break }
            i += 16
        }
        while i < n { if x[i] == mx { return i }; i += 1 }
        i = 1 // NaNs only: fall back to the scalar scan
    }
    while i < n { if x[i] > x[best] { best = i }; i += 1 }
    return best
}
