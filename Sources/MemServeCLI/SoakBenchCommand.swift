import ArgumentParser
import Bench
import Cluster
import Engine
import Foundation
import GGUF
import Model
import Server

/// `memserve bench soak`: the soak test's long version, over the model given or a synthetic one.
struct SoakBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "A long mixed load through the HTTP front end with clients hanging up mid-answer; then checks that no request was lost, no KV block leaked and /metrics equals the pools, and reports resident memory.")

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var output: BenchOutputArguments

    @Option var requests = 10_000
    @Option(help: "Clients sending at once.") var concurrency = 8
    @Option var seed: UInt64 = 1
    @Option(name: .customLong("max-tokens"), help: "Largest max_tokens of a request (each draws 1...N).") var maxTokens = 32
    @Option(name: .customLong("disconnect-fraction"), help: "Share of clients that hang up before the answer ends.") var disconnectFraction = 1.0 / 3
    @Option(help: "Requests before the first resident-memory reading.") var warmup = 500
    @Flag(help: "Serve a tiny random-weight model instead of --model (fast; exercises everything but the real weights).")
    var synthetic = false
    @Option(help: "Prefill instances (with --decode: disaggregated, behind the embedded router).") var prefill = 0
    @Option(help: "Decode instances.") var decode = 0
    @Option(name: .customLong("pd-mode")) var pdMode: PDMode = .caching3
    @Option(help: "How instances of this process talk: in-process or grpc (loopback).") var transport: DeploymentSpec.Transport = .inProcess

    func validate() throws {
        if requests < 1 || concurrency < 1 || maxTokens < 1 { throw ValidationError("--requests, --concurrency and --max-tokens must be positive") }
        if !(0...1).contains(disconnectFraction) { throw ValidationError("--disconnect-fraction must be between 0 and 1") }
        if (prefill == 0) != (decode == 0) { throw ValidationError("--prefill and --decode go together") }
    }

    func run() async throws {
        MemServe.bootstrapLogging(verbose: modelArguments.verbose)
        _ = PrometheusBootstrap.registry()
        let model: LoadedModel
        if synthetic {
            var shape = SyntheticModel.Shape()
            shape.contextLength = 1024
            var options = modelArguments.modelOptions
            options.maxContext = min(options.maxContext, 1024)
            model = try LoadedModel(file: GGUFFile(bytes: SyntheticModel.gguf(shape)), name: "synthetic", options: options,
                                    threads: modelArguments.threads)
        } else {
            model = try modelArguments.load()
        }
        var spec = DeploymentSpec()
        spec.colocated = prefill > 0 ? 0 : 1
        spec.prefill = prefill
        spec.decode = decode
        spec.mode = pdMode
        spec.transport = transport
        spec.threads = modelArguments.threads
        spec.hotBlocks = model.blocks(forMegabytes: modelArguments.kvMegabytes)
        let backend = try await Deployment.start(model: model, spec: spec)
        var c = SoakBench.Configuration()
        c.requests = requests
        c.concurrency = concurrency
        c.seed = seed
        c.maxTokens = maxTokens
        c.disconnectFraction = disconnectFraction
        c.warmup = min(warmup, requests)
        let r = try await SoakBench.runInProcess(backend: backend, configuration: c) {
            FileHandle.standardError.write(Data("soak: \($0)\n".utf8))
        }
        if output.json {
            try printJSON(r)
        } else {
            printTable([
                ("requests", "\(r.requests) in \(String(format: "%.0f", r.seconds)) s"),
                ("completed", "\(r.completed) (\(r.streamed) streamed)"),
                ("disconnected", "\(r.disconnected)"),
                ("refused (4xx)", "\(r.refused)"),
                ("lost", "\(r.lost) \(r.lostReasons)"),
                ("blocks leaked", "\(r.blocksLeaked) (running \(r.running), waiting \(r.waiting), handoffs \(r.pendingHandoffs))"),
                ("/metrics", r.metricsDisagreements.isEmpty ? "agrees with the pools" : r.metricsDisagreements.joined(separator: "; ")),
                ("RSS MiB", String(format: "%.1f after warm-up, %.1f halfway, %.1f at the end", r.rssWarmMB, r.rssHalfMB, r.rssEndMB)),
            ])
        }
        if !r.clean { throw CLIError("the soak run left something behind (see above)") }
    }
}
