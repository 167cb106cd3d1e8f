import Foundation

/// Σ a[i] b[i]
@inlinable
public func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var s: Float = 0
    for i in 0..<n { s += a[i] * b[i] }
    return s
}

/// out[i] = x[i] / rms(x) * weight[i]
@inlinable
public func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, _ n: Int, eps: Float) {
    var ss: Float = 0
    for i in 0..<n { ss += x[i] * x[i] }
    let scale = 1 / (ss / Float(n) + eps).squareRoot()
    for i in 0..<n { out[i] = x[i] * scale * weight[i] }
}

/// x = softmax(x), numerically stable.
@inlinable
public func softmaxInPlace(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
    var mx = -Float.infinity
    for i in 0..<n { mx = max(mx, x[i]) }
    var s: Float = 0
    for i in 0..<n { let e = expf(x[i] - mx); x[i] = e; s += e }
    let inv = 1 / s
    for i in 0..<n { x[i] *= inv }
}

/// out[i] = silu(gate[i]) * up[i]
@inlinable
public func siluMul(_ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { let g = gate[i]; out[i] = g / (1 + expf(-g)) * up[i] }
}

/// y[i] += x[i]
@inlinable
public func addInPlace(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
    for i in 0..<n { y[i] += x[i] }
}

/// y[i] += alpha * x[i]
@inlinable
public func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { y[i] += alpha * x[i] }
}

/// x[i] *= alpha
@inlinable
public func scaleInPlace(_ x: UnsafeMutablePointer<Float>, _ alpha: Float, _ n: Int) {
    for i in 0..<n { x[i] *= alpha }
}

/// Rotates adjacent pairs (x[2i], x[2i+1]) of each of `heads` vectors of `headDim` floats
/// (stride `headDim`) by the angles in `cos`/`sin` (`headDim / 2` entries for this position).
@inlinable
public func ropeAdjacentPairs(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int,
                              cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
    for h in 0..<heads {
        let v = x + h * headDim
        for i in 0..<headDim / 2 {
            let a = v[2 * i], b = v[2 * i + 1]
            v[2 * i] = a * cos[i] - b * sin[i]
            v[2 * i + 1] = a * sin[i] + b * cos[i]
        }
    }
}

/// Index of the largest value (first on ties).
@inlinable
public func argmax(_ x: UnsafePointer<Float>, _ n: Int) -> Int {
    var best = 0
    for i in 1..<n where x[i] > x[best] { best = i }
    return best
}
