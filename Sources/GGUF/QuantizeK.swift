// Simple reference quantizers for Q5_0, Q5_1 and the K-quants (Q2_K … Q6_K).
//
// Q5_0 / Q5_1 follow ggml's `*_ref` quantizers exactly. The K-quants are not ggml's (which
// search for error-minimizing scales): each sub-block gets the scale (and min) that just covers
// its range, the block's d (and dmin) is rounded *up* to fp16 so every quantized sub-block scale
// fits its bits, and sub-block scales are rounded up too, so no weight clamps. The round-trip
// error of a weight is then at most half its sub-block's step plus half a min step. The bytes
// are in ggml's layouts, so ggml (and this engine) decode them as written.

/// 32 values: d = (signed value of largest magnitude) / -16, q = round(x / d) + 16 in 0...31;
/// low nibbles hold elements 0..<16, high nibbles 16..<32, bit j of `qh` is element j's 5th bit.
func appendQ5_0(_ x: ArraySlice<Float>, to out: inout [UInt8]) {
    var amax: Float = 0, extreme: Float = 0
    for v in x where amax < abs(v) { amax = abs(v); extreme = v }
    let d = extreme / -16
    let id: Float = d != 0 ? 1 / d : 0
    appendLE(fp16Bits(d), to: &out)
    appendQ5Quants(x.map { UInt8(max(0, min(31, ($0 * id + 16.5).rounded(.towardZero)))) }, to: &out)
}

/// 32 values: d = (max - min) / 31, m = min, q = round((x - m) / d).
func appendQ5_1(_ x: ArraySlice<Float>, to out: inout [UInt8]) {
    let lo = x.min()!, hi = x.max()!
    let d = (hi - lo) / 31
    let id: Float = d != 0 ? 1 / d : 0
    appendLE(fp16Bits(d), to: &out)
    appendLE(fp16Bits(lo), to: &out)
    appendQ5Quants(x.map { UInt8(max(0, min(31, (($0 - lo) * id + 0.5).rounded(.towardZero)))) }, to: &out)
}

private func appendQ5Quants(_ q: [UInt8], to out: inout [UInt8]) {
    var qh: UInt32 = 0
    for j in 0..<32 { qh |= UInt32(q[j] >> 4) << j }
    appendLE(qh, to: &out)
    for j in 0..<16 { out.append(q[j] & 0xF | (q[j + 16] & 0xF) << 4) }
}

/// Nearest fp16 at or above `v` (≥ 0), so that `v / result` never exceeds the intended maximum.
private func halfAtLeast(_ v: Float) -> Float16 {
    var h = Float16(v)
    if Float(h) < v { h = h.nextUp }
    return h
}

/// Sub-block scale quantized against block scale `d`, rounded up so the range stays covered.
private func scaleSteps(_ s: Float, _ d: Float, max top: Int) -> Int {
    d > 0 ? min(top, Int((s / d).rounded(.up))) : 0
}

/// Quantizes `x` with an asymmetric step per sub-block: q = round((x + dm) / ds) in 0...qmax,
/// with ds = d·sc and dm = dmin·m, sc and m in 0...smax. Returns d, dmin, sc, m, q.
private func asymmetric(_ x: ArraySlice<Float>, sub: Int, qmax: Int, smax: Int)
    -> (d: Float16, dmin: Float16, sc: [Int], m: [Int], q: [Int]) {
    let n = x.count / sub, base = x.startIndex
    var scale = [Float](repeating: 0, count: n), negMin = [Float](repeating: 0, count: n)
    for j in 0..<n {
        let s = x[(base + j * sub)..<(base + (j + 1) * sub)]
        let lo = min(0, s.min()!), hi = max(0, s.max()!)
        scale[j] = (hi - lo) / Float(qmax)
        negMin[j] = -lo
    }
    let d = halfAtLeast(scale.max()! / Float(smax)), dmin = halfAtLeast(negMin.max()! / Float(smax))
    let sc = scale.map { scaleSteps($0, Float(d), max: smax) }
    let m = negMin.map { Float(dmin) > 0 ? min(smax, Int(($0 / Float(dmin)).rounded())) : 0 }
    var q = [Int](repeating: 0, count: x.count)
    for i in 0..<x.count {
        let j = i / sub
        let ds = Float(d) * Float(sc[j]), dm = Float(dmin) * Float(m[j])
        q[i] = ds > 0 ? max(0, min(qmax, Int(((x[base + i] + dm) / ds).rounded()))) : 0
    }
    return (d, dmin, sc, m, q)
}

/// Quantizes `x` symmetrically per sub-block: q = round(x / ds) in qmin...qmax with
/// ds = d·sc and sc in 0...smax (scales are non-negative; the sign is in q).
private func symmetric(_ x: ArraySlice<Float>, sub: Int, qmin: Int, qmax: Int, smax: Int) -> (d: Float16, sc: [Int], q: [Int]) {
    let n = x.count / sub, base = x.startIndex
    let scale = (0..<n).map { j in
        x[(base + j * sub)..<(base + (j + 1) * sub)].reduce(Float(0)) { max($0, abs($1)) } / Float(qmax)
    }
    let d = halfAtLeast(scale.max()! / Float(smax))
    let sc = scale.map { scaleSteps($0, Float(d), max: smax) }
    var q = [Int](repeating: 0, count: x.count)
    for i in 0..<x.count {
        let ds = Float(d) * Float(sc[i / sub])
        q[i] = ds > 0 ? max(qmin, min(qmax, Int((x[base + i] / ds).rounded()))) : 0
    }
    return (d, sc, q)
}

/// ggml's 12-byte packing of eight 6-bit scales and eight 6-bit mins (Q4_K, Q5_K).
private func packScalesAndMins(_ sc: [Int], _ m: [Int]) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 12)
    for j in 0..<4 {
        b[j] = UInt8(sc[j] | (sc[j + 4] >> 4) << 6)
        b[j + 4] = UInt8(m[j] | (m[j + 4] >> 4) << 6)
        b[j + 8] = UInt8(sc[j + 4] & 0xF | (m[j + 4] & 0xF) << 4)
    }
    return b
}

/// 256 values: fp16 d, fp16 dmin, 12 bytes of scales/mins, 128 bytes: byte 32g + l holds
/// element 64g + l (low nibble) and 64g + 32 + l (high nibble).
func appendQ4_K(_ x: ArraySlice<Float>, to out: inout [UInt8]) {
    let r = asymmetric(x, sub: 32, qmax: 15, smax: 63)
    appendLE(r.d.bitPattern, to: &out)
    appendLE(r.dmin.bitPattern, to: &out)
    out += packScalesAndMins(r.sc, r.m)
    for g in 0..<4 { for l in 0..<32 { out.append(UInt8(r.q[64 * g + l] | r.q[64 * g + 32 + l] << 4)) } }
}

/// Q4_K's layout with a 32-byte plane between scales and nibbles: bit j of byte l is the 5th
/// bit of element 32j + l.
func appendQ5_K(_ x: ArraySlice<Float>, to out: inout [UInt8]) {
    let r = asymmetric(x, sub: 32, qmax: 31, smax: 63)
    appendLE(r.d.bitPattern, to: &out)
    appendLE(r.dmin.bitPattern, to: &out)
    out += packScalesAndMins(r.sc, r.m)
    for l in 0..<32 {
        var h = 0
        for j in 0..<8 { h |= (r.q[32 * j + l] >> 4) << j }
        out.append(UInt8(h))
    }
    for g in 0..<4 {
        for l in 0..<32 { out.append(UInt8(r.q[64 * g + l] & 0xF | (r.q[64 * g + 32 + l] & 0xF) << 4)) }
    }
}

/// 256 values: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 int8 scales, fp16 d.
/// Element 128h + 32t + l (q + 32 in 0...63) is nibble t >> 1 of byte 64h + 32(t & 1) + l and
/// bits 2t, 2t+1 of byte 128 + 32h + l.
func appendQ6_K(_ x: ArraySlice<Float>, to out: inout [UInt8]) {
    let r = symmetric(x, sub: 16, qmin: -32, qmax: 31, smax: 127)
    var b = [UInt8](repeating: 0, count: 210)
    for i in 0..<256 {
        let q = r.q[i] + 32, h = i / 128, t = (i % 128) / 32, l = i % 32
        b[64 * h + 32 * (t & 1) + l] |= UInt8(q & 0xF) << (4 * (t >> 1))
        b[128 + 32 * h + l] |= UInt8(q >> 4) << (2 * t)
    }
    for j in 0..<16 { b[192 + j] = UInt8(r.sc[j]) }
    b[208] = UInt8(r.d.bitPattern & 0xFF)
    b[209] = UInt8(r.d.bitPattern >> 8)
    out += b
}

/// 256 values: 16 bytes of (scale | min << 4) per 16 elements, 64 bytes of 2-bit quants (element
/// 128h + 32t + l is bits 2t, 2t+1 of byte 32h + l), fp16 d, fp16 dmin.
func appendQ2_K(_ x: ArraySlice<Float>, to out: inout [UInt8]) {
    let r = asymmetric(x, sub: 16, qmax: 3, smax: 15)
    for j in 0..<16 { out.append(UInt8(r.sc[j] | r.m[j] << 4)) }
    out += twoBitPlanes(r.q)
    appendLE(r.d.bitPattern, to: &out)
    appendLE(r.dmin.bitPattern, to: &out)
}

/// 256 values: 32 bytes of high bits (bit c of byte l: element 32c + l has q ≥ 0), 64 bytes of
/// the low 2 bits of q + 4 (as Q2_K's), 12 bytes of sixteen 6-bit scales + 32, fp16 d.
func appendQ3_K(_ x: ArraySlice<Float>, to out: inout [UInt8]) {
    let r = symmetric(x, sub: 16, qmin: -4, qmax: 3, smax: 31)
    let u = r.q.map { $0 + 4 }
    for l in 0..<32 {
        var h = 0
        for c in 0..<8 { h |= (u[32 * c + l] >> 2) << c }
        out.append(UInt8(h))
    }
    out += twoBitPlanes(u.map { $0 & 3 })
    var s = [UInt8](repeating: 0, count: 12)
    for i in 0..<16 {
        let v = r.sc[i] + 32
        s[i % 8] |= UInt8(v & 0xF) << (4 * (i / 8))
        s[8 + i % 4] |= UInt8(v >> 4) << (2 * (i / 4))
    }
    out += s
    appendLE(r.d.bitPattern, to: &out)
}

private func twoBitPlanes(_ q: [Int]) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 64)
    for i in 0..<256 { b[32 * (i / 128) + i % 32] |= UInt8(q[i] & 3) << (2 * ((i % 128) / 32)) }
    return b
}
