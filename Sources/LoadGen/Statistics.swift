/// Average and percentiles of one latency metric, in milliseconds.
public struct Summary: Codable, Sendable, Equatable {
    public var avg: Double
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var max: Double
    /// How many values the summary is over.
    public var count: Int

    public init(avg: Double, p50: Double, p90: Double, p99: Double, max: Double, count: Int) {
        self.avg = avg
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.max = max
        self.count = count
    }

    /// The summary of `values` (all zeros when there are none).
    public init(_ values: [Double]) {
        let sorted = values.sorted()
        guard let last = sorted.last else {
            self.init(avg: 0, p50: 0, p90: 0, p99: 0, max: 0, count: 0)
            return
        }
        self.init(avg: sorted.reduce(0, +) / Double(sorted.count),
                  p50: Statistics.percentile(sorted, 50), p90: Statistics.percentile(sorted, 90),
                  p99: Statistics.percentile(sorted, 99), max: last, count: sorted.count)
    }
}

public enum Statistics {
    /// The `p`-th percentile (0...100) of ascending `sorted` values, by linear interpolation
    /// between closest ranks: with n values the rank is h = (n - 1) * p / 100 (0-based) and the
    /// result is x[floor h] + (h - floor h) * (x[floor h + 1] - x[floor h]). This is NumPy's
    /// default (`numpy.percentile`, method "linear") and Hyndman and Fan's definition 7, so the
    /// plots computed from results.json agree with the tables.
    public static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        precondition(!sorted.isEmpty && (0...100).contains(p))
        let h = Double(sorted.count - 1) * p / 100
        let lo = Int(h.rounded(.down))
        let hi = Swift.min(lo + 1, sorted.count - 1)
        return sorted[lo] + (h - Double(lo)) * (sorted[hi] - sorted[lo])
    }

    /// Relative change from `base` to `value`, in percent (negative: `value` is lower).
    public static func change(from base: Double, to value: Double) -> Double? {
        base > 0 ? (value - base) / base * 100 : nil
    }
}
