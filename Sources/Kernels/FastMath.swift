// Vectorized exp for softmax and SiLU.
//
// exp(x) = 2^n · exp(r) with n = round(x / ln 2) and r = x - n·ln 2 in [-ln2/2, ln2/2]
// (ln 2 split in two parts so r is computed almost exactly), exp(r) by Cephes' degree-7
// polynomial. Max relative error ≈ 1.2e-7 over the whole finite range (see the tests).

@usableFromInline let expHi: Float = 88.72283   // above: +inf
@usableFromInline let expLo: Float = -87.33654  // below: 0 (2^n would leave the normal range)

/// e^x for 16 lanes. Inputs above 88.7228 give +inf, below -87.3365 give 0 (including -inf,
/// which softmax uses for masked positions); NaN is not supported.
@inlinable @inline(__always)
public func fastExp(_ x: SIMD16<Float>) -> SIMD16<Float> {
    let xc = x.replacing(with: expHi, where: x .> expHi).replacing(with: expLo, where: x .< expLo)
    // Round to nearest by adding 1.5·2^23: n then sits in the low mantissa bits of nm.
    let magic = SIMD16<Float>(repeating: 12_582_912)
    let nm = magic.addingProduct(xc, SIMD16<Float>(repeating: 1.442_695_04))
    let n = nm - magic
    var r = xc.addingProduct(n, SIMD16<Float>(repeating: -0.693_359_375))
    r = r.addingProduct(n, SIMD16<Float>(repeating: 2.121_944_4e-4))
    var p = SIMD16<Float>(repeating: 1.398_199_95e-3).addingProduct(SIMD16<Float>(repeating: 1.987_569_15e-4), r)
    p = SIMD16<Float>(repeating: 8.333_451_9e-3).addingProduct(p, r)
    p = SIMD16<Float>(repeating: 4.166_579_59e-2).addingProduct(p, r)
    p = SIMD16<Float>(repeating: 1.666_666_55e-1).addingProduct(p, r)
    p = SIMD16<Float>(repeating: 5.000_000_12e-1).addingProduct(p, r)
    let e = r.addingProduct(p, r * r) + 1
    // 2^n as two factors, because n reaches 128 near the top of the range.
    let ni = unsafeBitCast(nm, to: SIMD16<Int32>.self) &- 0x4B40_0000
    let n1 = ni &>> 1, n2 = ni &- n1
    let s1 = unsafeBitCast((n1 &+ 127) &<< 23, to: SIMD16<Float>.self)
    let s2 = unsafeBitCast((n2 &+ 127) &<< 23, to: SIMD16<Float>.self)
    return (e * s1 * s2)
        .replacing(with: .infinity, where: x .> expHi)
        .replacing(with: 0, where: x .< expLo)
}
