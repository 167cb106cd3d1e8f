import Metrics
import Prometheus

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
