import ArgumentParser
import Foundation
import Server

/// Who may use the HTTP API and how much it holds at once: shared by `serve` and `router`, the
/// two commands that put the OpenAI front end on a socket.
struct EdgeArguments: ParsableArguments {
    @Option(name: .customLong("api-key"), help: ArgumentHelp(
        "Require 'Authorization: Bearer KEY' on every route but /health (and /metrics): repeatable or comma-separated. Also read from $MEMSERVE_API_KEY (comma-separated). Default: no authentication.",
        valueName: "KEY"))
    var apiKey: [String] = []

    @Flag(name: .customLong("metrics-require-key"), help: "With API keys, /metrics needs one too (/health never does).")
    var metricsRequireKey = false

    @Option(name: .customLong("max-queued-requests"), help: "Most generation requests queued or running at once; past it requests get 429 with Retry-After.")
    var maxQueuedRequests = LoadLimits().maxRequests

    @Option(name: .customLong("max-queued-tokens"), help: "Most prompt tokens of requests queued or running at once; past it, 429 (a request larger than this alone is served when nothing else is).")
    var maxQueuedTokens = LoadLimits().maxTokens

    @Option(name: .customLong("max-body-mb"), help: "Largest request body in MiB; larger ones get 413 and the connection is closed.")
    var maxBodyMegabytes = 4

    func validate() throws {
        if maxQueuedRequests < 1 { throw ValidationError("--max-queued-requests must be positive") }
        if maxQueuedTokens < 1 { throw ValidationError("--max-queued-tokens must be positive") }
        if maxBodyMegabytes < 1 || maxBodyMegabytes > 1024 { throw ValidationError("--max-body-mb must be between 1 and 1024") }
        if apiKey.contains(where: { $0.contains(" ") }) { throw ValidationError("--api-key: keys must not contain spaces") }
    }

    /// The keys from the flags and the environment, with blanks dropped.
    var keys: [String] {
        let env = ProcessInfo.processInfo.environment["MEMSERVE_API_KEY"].map { [$0] } ?? []
        return (apiKey + env).flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
    }

    /// The server's configuration for `host:port`, with these limits and keys.
    func configuration(host: String, port: Int, servedModelNames: [String]) -> ServerConfiguration {
        ServerConfiguration(host: host, port: port, maxBodyBytes: maxBodyMegabytes << 20, servedModelNames: servedModelNames,
                            limits: LoadLimits(maxRequests: maxQueuedRequests, maxTokens: maxQueuedTokens),
                            apiKeys: APIKeys(keys), metricsRequireKey: metricsRequireKey)
    }
}
