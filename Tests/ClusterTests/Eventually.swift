import Testing

/// Waits, bounded, until `condition` holds (the state it reads is in other threads' or
/// processes' hands); records an issue naming `what` if it never does.
func eventually(_ what: String, seconds: Double = 20, _ condition: () async throws -> Bool) async throws {
    for _ in 0..<Int(seconds * 100) {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("timed out waiting until \(what)")
}
