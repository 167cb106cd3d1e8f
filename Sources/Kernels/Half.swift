/// fp16 / bf16 bit patterns to Float.
@inlinable @inline(__always)
public func halfToFloat(_ bits: UInt16) -> Float {
    #if arch(x86_64) || arch(arm64)
    return Float(Float16(bitPattern: bits))
    #else
    let sign = UInt32(bits & 0x8000) << 16
    let exp = UInt32(bits >> 10) & 0x1F
    let mant = UInt32(bits & 0x3FF)
    if exp == 0 {
        let v = Float(mant) * (1.0 / 16_777_216.0)
        return sign != 0 ? -v : v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
    return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13))
    #endif
}

@inlinable @inline(__always)
public func bf16ToFloat(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

@inlinable @inline(__always)
public func floatToHalf(_ v: Float) -> UInt16 { Float16(v).bitPattern }
