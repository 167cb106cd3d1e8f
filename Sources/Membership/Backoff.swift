/// Retry delays that double from `initial` up to `maximum`.
public struct Backoff: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration

    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(2)) {
        self.initial = initial
        self.maximum = max(initial, maximum)
    }

    /// The running state of one retry sequence.
    struct Sequence {
        let policy: Backoff
        private(set) var current: Duration

        init(_ policy: Backoff) {
            self.policy = policy
            self.current = policy.initial
        }

        /// The delay to wait now; the next one is twice as long, up to the maximum.
        mutating func next() -> Duration {
            let delay = current
            current = min(current * 2, policy.maximum)
            return delay
        }

        mutating func reset() { current = policy.initial }
    }
}
