import Kernels

/// xoshiro256** seeded through SplitMix64: fast, reproducible per request.
public struct RandomSource: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var seeder = SplitMix64(seed: seed)
        s = (seeder.next(), seeder.next(), seeder.next(), seeder.next())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Float {
        Float(next() >> 40) * (1.0 / Float(1 << 24))
    }
}
