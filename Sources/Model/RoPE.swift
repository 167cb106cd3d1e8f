import Foundation
import Kernels

/// Precomputed rotary-embedding angles: `cos`/`sin` as `[position][headDim / 2]`.
final class RoPETable: @unchecked Sendable {
    let headDim: Int
    let positions: Int
    let style: RoPEStyle
    /// `[positions][headDim / 2]` each.
    let cos: UnsafeMutablePointer<Float>
    let sin: UnsafeMutablePointer<Float>

    /// Angles `position · inverseFrequencies[i]` for every position below `positions`.
    init(headDim: Int, positions: Int, inverseFrequencies: [Double], style: RoPEStyle) {
        precondition(inverseFrequencies.count == headDim / 2)
        self.headDim = headDim
        self.positions = positions
        self.style = style
        let half = headDim / 2
        cos = .allocate(capacity: positions * half)
        sin = .allocate(capacity: positions * half)
        // Angles in double precision: at position 8K an fp32 angle is already off by ~1e-3 rad.
        for i in 0..<half {
            let invFreq = inverseFrequencies[i]
            for p in 0..<positions {
                let a = Double(p) * invFreq
                cos[p * half + i] = Float(Foundation.cos(a))
                sin[p * half + i] = Float(Foundation.sin(a))
            }
        }
    }

    /// The table of a configuration: its base, head size, style and scaling.
    convenience init(configuration c: TransformerConfiguration, positions: Int) {
        self.init(headDim: c.headDim, positions: positions,
                  inverseFrequencies: c.ropeScaling.inverseFrequencies(base: Double(c.ropeBase), headDim: c.headDim),
                  style: c.ropeStyle)
    }

    deinit {
        cos.deallocate()
        sin.deallocate()
    }

    /// Rotates `heads` consecutive head vectors at `x` for sequence position `position`.
    @inline(__always)
    func apply(_ x: UnsafeMutablePointer<Float>, heads: Int, position: Int) {
        let half = headDim / 2
        let c = cos + position * half, s = sin + position * half
        switch style {
        case .adjacentPairs:
            ropeAdjacentPairs(x, heads: heads, headDim: headDim, cos: c, sin: s)
        case .halves:
            for h in 0..<heads {
                let v = x + h * headDim
                for i in 0..<half {
                    let a = v[i], b = v[i + half]
                    v[i] = a * c[i] - b * s[i]
                    v[i + half] = a * s[i] + b * c[i]
                }
            }
        }
    }
}
