import Router
import ArgumentParser
import Bench
import Cluster
import Engine
import Foundation

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks; each prints a table, or one JSON object with --json.",
        subcommands: [EngineBenchCommand.self, MemPoolBenchCommand.self, CacheBenchCommand.self, ConversationBenchCommand.self,
                      TransferBenchCommand.self, PDBenchCommand.self, RouterBenchCommand.self, RoutingBenchCommand.self,
                      ElasticBenchCommand.self, BenchServeCommand.self, BenchPaperCommand.self, KernelBenchCommand.self, SoakBenchCommand.self])
}

/// Flags every benchmark shares.
struct BenchOutputArguments: ParsableArguments {
    @Flag(help: "Print one JSON object instead of a table.")
    var json = false
}

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    Output.write(String(decoding: try encoder.encode(value), as: UTF8.self) + "\n")
}

func printTable(_ rows: [(String, String)]) {
    let width = rows.map(\.0.count).max() ?? 0
    for (k, v) in rows { Output.write(k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + v + "\n") }
}

struct EngineBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Prefill (512-token prompt) and batched decode throughput, beside sgemm peak and memory bandwidth.")

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var output: BenchOutputArguments
    @Option(name: .customLong("prompt-tokens")) var promptTokens = 512
    @Option(name: .customLong("decode-steps")) var decodeSteps = 32
    @Option(name: .customLong("batch"), help: "Decode batch sizes (repeatable).") var batches: [Int] = [1, 8, 32]
    @Flag(name: .customLong("no-calibration"), help: "Skip measuring sgemm peak and memory bandwidth.") var noCalibration = false

    func run() throws {
        MemServe.bootstrapLogging(verbose: modelArguments.verbose)
        let model = try modelArguments.load()
        let r = try EngineBench.run(model: model, promptTokens: promptTokens, batches: batches, decodeSteps: decodeSteps,
                                     calibrate: !noCalibration) {
            FileHandle.standardError.write(Data("bench: \($0)\n".utf8))
        }
        if output.json { try printJSON(r); return }
        func f(_ x: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", x) }
        var rows: [(String, String)] = [
            ("model", "\(r.model) (\(r.threads) threads)"),
            ("prefill (pp\(r.prompt_tokens))", "\(f(r.prefill_tokens_per_s)) tokens/s  = \(f(r.prefill_gflops)) GFLOP/s, \(f(100 * r.prefill_fraction_of_sgemm))% of sgemm peak \(f(r.sgemm_gflops)) GFLOP/s"),
        ]
        for b in r.decode_tokens_per_s.keys.sorted(by: { Int($0)! < Int($1)! }) {
            rows.append(("decode batch \(b)", "\(f(r.decode_tokens_per_s[b]!)) tokens/s"))
        }
        rows.append(("decode b1 traffic", "\(f(r.decode_weight_mb_per_step)) MB/step = \(f(r.decode_b1_gbps, 2)) GB/s, \(f(100 * r.decode_b1_fraction_of_bandwidth))% of \(f(r.mem_read_gbps, 2)) GB/s (limit \(f(r.decode_b1_limit_tokens_per_s)) tokens/s)"))
        rows.append(("peak RSS", "\(f(r.peak_rss_mb)) MiB"))
        printTable(rows)
    }
}

struct MemPoolBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mempool",
        abstract: "MemPool API costs: allocate/free per block, match and insert of 4K-token prompts in a 100K-block tree.")

    @OptionGroup var output: BenchOutputArguments

    func run() throws {
        let r = MemPoolBench.run()
        if output.json { try printJSON(r); return }
        func f(_ x: Double) -> String { String(format: "%.2f", x) }
        printTable([
            ("alloc+free per block", "\(f(r.alloc_free_ns_per_block)) ns   (paper ~800 ns; target <= 80 ns)"),
            ("alloc with eviction", "\(f(r.alloc_evict_ns_per_block)) ns per block"),
            ("match 4K tokens", "\(f(r.match_us_4k)) us   (hit \(f(r.match_hit_us_4k)), partial \(f(r.match_partial_us_4k)), miss \(f(r.match_miss_us_4k)))"),
            ("insert 4K tokens", "\(f(r.insert_us_4k)) us   (paper <= 700 us; target <= 70 us; shared prefix \(f(r.insert_shared_us_4k)))"),
            ("tree", "\(r.tree_blocks) blocks in \(r.tree_nodes) nodes"),
        ])
    }
}

struct CacheBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "TTFT of a 2,048-token prompt uncached vs. with its first 1,792 tokens cached.")

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var output: BenchOutputArguments
    @Option(name: .customLong("prompt-tokens")) var promptTokens = 2048
    @Option(name: .customLong("cached-tokens")) var cachedTokens = 1792

    func validate() throws {
        if cachedTokens >= promptTokens || cachedTokens < 0 { throw ValidationError("--cached-tokens must be in 0..<--prompt-tokens") }
    }

    func run() throws {
        MemServe.bootstrapLogging(verbose: modelArguments.verbose)
        let model = try modelArguments.load()
        let r = try CacheBench.run(model: model, promptTokens: promptTokens, cachedTokens: cachedTokens)
        if output.json { try printJSON(r); return }
        func f(_ x: Double) -> String { String(format: "%.1f", x) }
        printTable([
            ("prompt", "\(r.prompt_tokens) tokens, \(r.cached_prefix_tokens) shared with a cached prompt (\(r.reported_cached_tokens) served from cache)"),
            ("TTFT uncached", "\(f(r.ttft_uncached_ms)) ms"),
            ("TTFT cached", "\(f(r.ttft_cached_ms)) ms"),
            ("ratio", String(format: "%.3f (the FLOPs left to compute: %.3f; target <= 0.15)", r.ratio, r.flop_ratio)),
        ])
    }
}

struct ConversationBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conversations",
        abstract: "Concurrent multi-turn chats replayed with prefix caching on and off.")

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var output: BenchOutputArguments
    @Option var conversations = 32
    @Option var turns = 4
    @Option(name: .customLong("system-tokens")) var systemTokens = 128
    @Option(name: .customLong("user-tokens")) var userTokens = 48
    @Option(name: .customLong("answer-tokens")) var answerTokens = 32

    func run() throws {
        MemServe.bootstrapLogging(verbose: modelArguments.verbose)
        let model = try modelArguments.load()
        var w = ConversationBench.Workload()
        w.conversations = conversations
        w.turns = turns
        w.systemTokens = systemTokens
        w.userTokens = userTokens
        w.answerTokens = answerTokens
        let r = try ConversationBench.run(model: model, workload: w, kvMegabytes: modelArguments.kvMegabytes)
        if output.json { try printJSON(r); return }
        func f(_ x: Double) -> String { String(format: "%.1f", x) }
        printTable([
            ("workload", "\(r.conversations) conversations x \(r.turns) turns, \(r.prompt_tokens) prompt + \(r.generated_tokens) generated tokens"),
            ("tokens/s", "on \(f(r.tokens_per_s_on))   off \(f(r.tokens_per_s_off))"),
            ("cache hit rate", String(format: "%.1f%% of prompt tokens", 100 * r.cache_hit_rate)),
            ("TTFT p50", "on \(f(r.ttft_p50_ms_on)) ms   off \(f(r.ttft_p50_ms_off)) ms"),
            ("TTFT p99", "on \(f(r.ttft_p99_ms_on)) ms   off \(f(r.ttft_p99_ms_off)) ms"),
            ("JCT avg", "on \(f(r.jct_avg_ms_on)) ms   off \(f(r.jct_avg_ms_off)) ms"),
        ])
    }
}

struct TransferBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transfer",
        abstract: "KV transfer between two MemPools in this process (huge blocks vs per-layer copies) and over loopback gRPC, beside memcpy and raw TCP loopback.")

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var output: BenchOutputArguments
    @Option(help: "Send the gRPC transfers to this instance (HOST:PORT of `memserve instance`, with room for 1,088 blocks) instead of one in this process.")
    var peer: String?

    func run() async throws {
        MemServe.bootstrapLogging(verbose: modelArguments.verbose)
        let model = try modelArguments.load()
        let r = try await TransferBench.run(model: model, peer: try peer.map { try PeerAddress(parsing: $0) })
        if output.json { try printJSON(r); return }
        var rows: [(String, String)] = [("block", "\(r.block_bytes) bytes (\(r.layers) layers of K and V)")]
        for k in r.inprocess_gbps.keys.sorted(by: { (Int($0) ?? 0) < (Int($1) ?? 0) }) {
            rows.append(("\(k) blocks", String(format: "%.2f GB/s huge blocks, %.2f GB/s per layer, %.2f GB/s gRPC loopback",
                                               r.inprocess_gbps[k] ?? 0, r.inprocess_per_layer_gbps[k] ?? 0, r.grpc_gbps[k] ?? 0)))
        }
        rows.append(("memcpy", String(format: "%.2f GB/s", r.memcpy_gbps)))
        rows.append(("TCP loopback", String(format: "%.2f GB/s (raw sockets, %d blocks' bytes)", r.tcp_loopback_gbps, 1024)))
        rows.append(("gRPC / TCP", String(format: "%.2f at 1024 blocks (target >= 0.70)", r.grpc_vs_tcp_1024)))
        printTable(rows)
    }
}

struct PDBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pd",
        abstract: "Multi-turn chat at a fixed arrival rate: colocated vs PD-Basic vs PD-Caching-1/2/3 (TTFT, TPOT, JCT).")

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var output: BenchOutputArguments
    @Option var conversations = 12
    @Option var turns = 3
    @Option(name: .customLong("rate"), help: "Conversations arriving per second (Poisson).") var rate = 2.0
    @Option(help: "How PD instances move KV: inprocess (memory copy) or grpc (loopback network path).")
    var transport: PDBench.Transport = .inprocess

    func run() async throws {
        MemServe.bootstrapLogging(verbose: modelArguments.verbose)
        let model = try modelArguments.load()
        var w = PDBench.Workload()
        w.conversations = conversations
        w.turns = turns
        w.arrivalRate = rate
        let r = try await PDBench.run(model: model, workload: w, kvMegabytes: modelArguments.kvMegabytes,
                                         transport: transport) {
            FileHandle.standardError.write(Data("bench: \($0)\n".utf8))
        }
        if output.json { try printJSON(r); return }
        Output.write("\(r.conversations) conversations x \(r.turns) turns, \(r.arrival_rate_per_s)/s, PD over \(r.transport)\n")
        Output.write("config       TTFT avg/p99 ms    TPOT avg/p99 ms    JCT avg/p99 ms     cached\n")
        for name in ["colocated", "basic", "caching-1", "caching-2", "caching-3"] {
            guard let l = r.configurations[name] else { continue }
            Output.write(name.padding(toLength: 12, withPad: " ", startingAt: 0) +
                String(format: " %7.1f / %-8.1f %7.1f / %-8.1f %7.1f / %-8.1f %5.1f%%\n", l.ttft_avg_ms, l.ttft_p99_ms,
                       l.tpot_avg_ms, l.tpot_p99_ms, l.jct_avg_ms, l.jct_p99_ms, 100 * l.cached_prompt_fraction))
        }
    }
}

extension PDBench.Transport: ExpressibleByArgument {}
