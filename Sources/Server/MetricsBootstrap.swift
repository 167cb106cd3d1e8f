import Metrics
import Prometheus
import Serving

/// Installs swift-prometheus as the process's swift-metrics backend.
///
/// swift-metrics allows one bootstrap per process, and metrics created before it go nowhere,
/// so call this before creating the `EngineService`. Repeated calls return the same registry
/// (tests create many servers in one process).
public enum PrometheusBootstrap {
    private static let shared: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Token latencies are milliseconds apart; the default buckets start at 5 ms.
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(20),
            .milliseconds(50), .milliseconds(100), .milliseconds(200), .milliseconds(500),
            .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30),
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    /// The registry `/metrics` exports, bootstrapping on first use.
    public static func registry() -> PrometheusCollectorRegistry { shared }
}

/// The backend's pools and queues as gauges, recorded from `InferenceBackend.stats` when
/// `/metrics` is scraped: one value per process however many engines it runs, equal to what
/// `/health` reports.
enum PoolGauges {
    static let running = Gauge(label: "memserve_requests_running")
    static let waiting = Gauge(label: "memserve_queue_length")
    static let hotUsed = Gauge(label: "memserve_kv_blocks", dimensions: [("tier", "hot"), ("state", "used")])
    static let hotCached = Gauge(label: "memserve_kv_blocks", dimensions: [("tier", "hot"), ("state", "cached")])
    static let hotFree = Gauge(label: "memserve_kv_blocks", dimensions: [("tier", "hot"), ("state", "free")])
    static let coldUsed = Gauge(label: "memserve_kv_blocks", dimensions: [("tier", "cold"), ("state", "used")])
    static let coldCached = Gauge(label: "memserve_kv_blocks", dimensions: [("tier", "cold"), ("state", "cached")])
    static let coldFree = Gauge(label: "memserve_kv_blocks", dimensions: [("tier", "cold"), ("state", "free")])
    static let evictions = Gauge(label: "memserve_kv_evictions")
    // The peer tier: blocks kept here for peers, per tier; own evicted blocks staged for a
    // spill order, and those sent to peers so far.
    static let hotGuest = Gauge(label: "memserve_kv_blocks_held_for_peers", dimensions: [("tier", "hot")])
    static let coldGuest = Gauge(label: "memserve_kv_blocks_held_for_peers", dimensions: [("tier", "cold")])
    static let staged = Gauge(label: "memserve_kv_blocks_staged_for_spill")
    static let spilled = Gauge(label: "memserve_kv_blocks_spilled_to_peers")

    static func record(_ s: EngineStats) {
        running.record(s.running)
        waiting.record(s.waiting)
        hotUsed.record(s.hot.used)
        hotCached.record(s.hot.cached)
        hotFree.record(s.hot.free)
        coldUsed.record(s.cold.used)
        coldCached.record(s.cold.cached)
        coldFree.record(s.cold.free)
        evictions.record(s.evictions + s.demotions)
        hotGuest.record(s.hot.guest)
        coldGuest.record(s.cold.guest)
        staged.record(s.stagedBlocks)
        spilled.record(s.spilledBlocks)
    }
}
