/// Expands `count` values (a multiple of the format's block size) from `src` into floats.
public func dequantize(_ format: WeightFormat, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, count: Int) {
    precondition(count % format.blockSize == 0)
    switch format {
    case .f32:
        dst.update(from: src.assumingMemoryBound(to: Float.self), count: count)
    case .f16:
        for i in 0..<count { dst[i] = halfToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
    case .bf16:
        for i in 0..<count { dst[i] = bf16ToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
    case .q8_0:
        for b in 0..<count / 32 {
            let blk = src + b * 34
            let d = halfToFloat(blk.loadUnaligned(as: UInt16.self))
            for j in 0..<32 { dst[b * 32 + j] = d * Float(blk.load(fromByteOffset: 2 + j, as: Int8.self)) }
        }
    case .q4_0:
        for b in 0..<count / 32 {
            let blk = src + b * 18
            let d = halfToFloat(blk.loadUnaligned(as: UInt16.self))
            for j in 0..<16 {
                let q = blk.load(fromByteOffset: 2 + j, as: UInt8.self)
                dst[b * 32 + j] = d * Float(Int(q & 0xF) - 8)
                dst[b * 32 + j + 16] = d * Float(Int(q >> 4) - 8)
            }
        }
    case .q4_1:
        for b in 0..<count / 32 {
            let blk = src + b * 20
            let d = halfToFloat(blk.loadUnaligned(as: UInt16.self))
            let m = halfToFloat(blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            for j in 0..<16 {
                let q = blk.load(fromByteOffset: 4 + j, as: UInt8.self)
                dst[b * 32 + j] = d * Float(q & 0xF) + m
                dst[b * 32 + j + 16] = d * Float(q >> 4) + m
            }
        }
    }
}
