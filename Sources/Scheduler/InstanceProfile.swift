/// The cost-model inputs an instance measures at start-up and reports: block geometry, prefill
/// speed as a function of prompt length, and the speed of its KV link.
///
/// Prefill of `n` tokens of which the first `c` are cached costs
/// `overhead + perToken * (n - c) + attention * (n² - c²) / 2`: every new token pays a fixed
/// amount (the weights) plus one unit per token of context it attends to, and the sum of the
/// context lengths `c..<n` is `(n² - c²) / 2`.
public struct InstanceProfile: Sendable, Hashable, Codable {
    /// Tokens per KV block.
    public var blockTokens: Int
    /// Bytes per KV block (all layers' K and V).
    public var blockBytes: Int
    /// Seconds every prefill pays, whatever its length.
    public var prefillOverheadSeconds: Double
    /// Seconds per prefilled token, independent of its position.
    public var prefillSecondsPerToken: Double
    /// Seconds per (new token × context token) pair: the attention term.
    public var attentionSecondsPerTokenPair: Double
    /// Bytes per second of a block transfer to or from this instance.
    public var transferBytesPerSecond: Double
    /// Seconds a transfer pays before its first byte.
    public var transferLatencySeconds: Double

    /// A profile from known coefficients.
    public init(blockTokens: Int, blockBytes: Int, prefillOverheadSeconds: Double = 0, prefillSecondsPerToken: Double,
                attentionSecondsPerTokenPair: Double = 0, transferBytesPerSecond: Double, transferLatencySeconds: Double = 0) {
        self.blockTokens = max(1, blockTokens)
        self.blockBytes = max(0, blockBytes)
        self.prefillOverheadSeconds = max(0, prefillOverheadSeconds)
        self.prefillSecondsPerToken = max(0, prefillSecondsPerToken)
        self.attentionSecondsPerTokenPair = max(0, attentionSecondsPerTokenPair)
        self.transferBytesPerSecond = max(0, transferBytesPerSecond)
        self.transferLatencySeconds = max(0, transferLatencySeconds)
    }

    /// A profile fitted to measured prefill times of uncached prompts (e.g. 64 and 512 tokens):
    /// the non-negative least-squares fit of the overhead, per-token and attention terms.
    /// With two samples the overhead is left out, so the line and the curve are both determined.
    public init(blockTokens: Int, blockBytes: Int, prefillSamples: [PrefillSample], transferBytesPerSecond: Double,
                transferLatencySeconds: Double = 0) {
        let c = Self.fit(prefillSamples)
        self.init(blockTokens: blockTokens, blockBytes: blockBytes, prefillOverheadSeconds: c.overhead,
                  prefillSecondsPerToken: c.perToken, attentionSecondsPerTokenPair: c.attention,
                  transferBytesPerSecond: transferBytesPerSecond, transferLatencySeconds: transferLatencySeconds)
    }

    /// Predicted seconds to prefill a `tokens`-token prompt whose first `cachedTokens` are cached
    /// (0 when nothing is left to compute).
    public func prefillSeconds(tokens: Int, cachedTokens: Int) -> Double {
        let n = Double(max(0, tokens)), c = Double(min(max(0, cachedTokens), max(0, tokens)))
        guard n > c else { return 0 }
        return prefillOverheadSeconds + prefillSecondsPerToken * (n - c) + attentionSecondsPerTokenPair * (n * n - c * c) / 2
    }

    /// Predicted seconds to move `blocks` blocks over this instance's link (0 for none).
    public func transferSeconds(blocks: Int) -> Double {
        guard blocks > 0 else { return 0 }
        let bytes = Double(blocks) * Double(blockBytes)
        return transferLatencySeconds + (transferBytesPerSecond > 0 ? bytes / transferBytesPerSecond : .infinity)
    }

    enum CodingKeys: String, CodingKey {
        case blockTokens = "block_tokens"
        case blockBytes = "block_bytes"
        case prefillOverheadSeconds = "prefill_overhead_s"
        case prefillSecondsPerToken = "prefill_s_per_token"
        case attentionSecondsPerTokenPair = "attention_s_per_token_pair"
        case transferBytesPerSecond = "transfer_bytes_per_s"
        case transferLatencySeconds = "transfer_latency_s"
    }
}

/// One measured prefill: an uncached prompt of `tokens` tokens took `seconds`.
public struct PrefillSample: Sendable, Hashable, Codable {
    public var tokens: Int
    public var seconds: Double

    public init(tokens: Int, seconds: Double) {
        self.tokens = tokens
        self.seconds = seconds
    }
}

extension InstanceProfile {
    struct Coefficients: Equatable {
        var overhead = 0.0, perToken = 0.0, attention = 0.0
    }

    /// Non-negative least squares over the three terms, by trying every subset of them (the NNLS
    /// optimum is the unconstrained optimum of its support). Earlier subsets win ties, so two
    /// samples give the per-token and attention terms rather than an overhead.
    static func fit(_ samples: [PrefillSample]) -> Coefficients {
        let pts = samples.filter { $0.tokens > 0 && $0.seconds.isFinite && $0.seconds >= 0 }
        guard !pts.isEmpty else { return Coefficients() }
        // Columns scaled to comparable magnitudes: 1, n/1e3, n²/2e6.
        let features: [[Double]] = pts.map { p in
            let n = Double(p.tokens)
            return [1, n / 1e3, n * n / 2e6]
        }
        let y = pts.map(\.seconds)
        let subsets: [[Int]] = [[0, 1, 2], [1, 2], [0, 1], [0, 2], [1], [2], [0]]
        var best: (rss: Double, x: [Double])? = nil
        for s in subsets where s.count <= pts.count {
            guard let x = leastSquares(features.map { row in s.map { row[$0] } }, y), x.allSatisfy({ $0 >= 0 }) else { continue }
            var rss = 0.0
            for (i, row) in features.enumerated() {
                var pred = 0.0
                for (k, j) in s.enumerated() { pred += row[j] * x[k] }
                rss += (pred - y[i]) * (pred - y[i])
            }
            let tolerance = 1e-12 * y.reduce(0) { $0 + $1 * $1 }
            if best == nil || rss < best!.rss - tolerance {
                var full = [0.0, 0.0, 0.0]
                for (k, j) in s.enumerated() { full[j] = x[k] }
                best = (rss, full)
            }
        }
        guard let x = best?.x else { return Coefficients() }
        // b·n = (1e3·b)(n/1e3) and k·n²/2 = (1e6·k)(n²/2e6).
        return Coefficients(overhead: x[0], perToken: x[1] / 1e3, attention: x[2] / 1e6)
    }

    /// The least-squares solution of `a x = y` through the normal equations, or nil when singular.
    static func leastSquares(_ a: [[Double]], _ y: [Double]) -> [Double]? {
        let m = a.first?.count ?? 0
        guard m > 0 else { return nil }
        var n = [[Double]](repeating: [Double](repeating: 0, count: m + 1), count: m)
        for (row, yi) in zip(a, y) {
            for i in 0..<m {
                for j in 0..<m { n[i][j] += row[i] * row[j] }
                n[i][m] += row[i] * yi
            }
        }
        let norm = n.map { $0[0..<m].map(abs).max() ?? 0 }.max() ?? 0
        for col in 0..<m {
            var pivot = col
            for r in col..<m where abs(n[r][col]) > abs(n[pivot][col]) { pivot = r }
            guard abs(n[pivot][col]) > 1e-12 * max(norm, 1e-300) else { return nil }
            n.swapAt(col, pivot)
            for r in 0..<m where r != col {
                let f = n[r][col] / n[col][col]
                for c in col...m { n[r][c] -= f * n[col][c] }
            }
        }
        return (0..<m).map { n[$0][m] / n[$0][$0] }
    }
}
