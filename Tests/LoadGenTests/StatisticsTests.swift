import Testing
@testable import LoadGen

@Suite("Statistics: percentiles by linear interpolation between closest ranks")
struct StatisticsTests {
    // Hand-checked: n = 5, rank h = 4p/100.
    // p50: h = 2.0 -> x[2] = 35. p90: h = 3.6 -> 40 + 0.6 * (50 - 40) = 46. p99: h = 3.96 -> 49.6.
    // avg = (15 + 20 + 35 + 40 + 50) / 5 = 32.
    @Test("five values, given out of order")
    func fiveValues() {
        let s = Summary([40, 15, 50, 35, 20])
        #expect(s.count == 5)
        #expect(abs(s.avg - 32) < 1e-9)
        #expect(abs(s.p50 - 35) < 1e-9)
        #expect(abs(s.p90 - 46) < 1e-9)
        #expect(abs(s.p99 - 49.6) < 1e-9)
        #expect(s.max == 50)
    }

    // 1...10: p50 h = 4.5 -> 5.5; p90 h = 8.1 -> 9.1; p99 h = 8.91 -> 9.91 (numpy.percentile agrees).
    @Test("one to ten")
    func oneToTen() {
        let sorted = (1...10).map(Double.init)
        #expect(abs(Statistics.percentile(sorted, 50) - 5.5) < 1e-9)
        #expect(abs(Statistics.percentile(sorted, 90) - 9.1) < 1e-9)
        #expect(abs(Statistics.percentile(sorted, 99) - 9.91) < 1e-9)
        #expect(Statistics.percentile(sorted, 0) == 1)
        #expect(Statistics.percentile(sorted, 100) == 10)
    }

    @Test("one value and none")
    func edges() {
        let one = Summary([7])
        #expect(one.avg == 7 && one.p50 == 7 && one.p90 == 7 && one.p99 == 7)
        let none = Summary([])
        #expect(none.count == 0 && none.avg == 0 && none.p99 == 0)
    }

    @Test("relative change")
    func change() {
        #expect(Statistics.change(from: 200, to: 150) == -25)
        #expect(Statistics.change(from: 0, to: 1) == nil)
    }
}
