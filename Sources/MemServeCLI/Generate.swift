import ArgumentParser
import Engine
import Foundation
import Logging
import Tokenizer

/// Runs one request to completion on an engine, streaming text to `onText`.
func runToCompletion(_ engine: EngineCore, request: GenerationRequest, onText: (String) -> Void) throws -> RequestOutput? {
    try engine.add(request)
    var last: RequestOutput?
    while engine.hasWork {
        for out in try engine.step() where out.id == request.id {
            onText(out.text)
            last = out
        }
    }
    return last
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Complete a prompt and stream the completion text to stdout (logs go to stderr).")

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var sampling: SamplingArguments
    @Option(help: "The prompt text (special tokens such as <|im_start|> are recognized).")
    var prompt: String

    func run() throws {
        MemServe.bootstrapLogging(verbose: modelArguments.verbose)
        let log = Logger(label: "memserve.generate")
        let model = try modelArguments.load()
        let engine = EngineCore(model: model.transformer, tokenizer: model.tokenizer,
                                memPool: try modelArguments.makeMemPool(for: model))
        let tokens = model.tokenizer.encode(prompt)
        let start = Date()
        do {
            let done = try runToCompletion(engine, request: GenerationRequest(id: 1, promptTokens: tokens, sampling: sampling.parameters),
                                           onText: Output.write)
            Output.write("\n")
            let seconds = Date().timeIntervalSince(start)
            log.info("\(tokens.count) prompt tokens, \(done?.generatedTokens ?? 0) generated in \(String(format: "%.2f", seconds)) s, finish: \(done?.finishReason?.rawValue ?? "-")")
        } catch let error as EngineError {
            throw CLIError(error.description)
        }
    }
}

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Chat with the model through its chat template: one message from --prompt, or an interactive loop.")

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var sampling: SamplingArguments
    @Option(help: "One user message; without it, read messages from stdin until EOF.")
    var prompt: String?
    @Option(help: "System message (default: the template's own).")
    var system: String?

    func run() throws {
        MemServe.bootstrapLogging(verbose: modelArguments.verbose)
        let model = try modelArguments.load()
        if let why = model.chatTemplate.unavailableReason { throw CLIError("cannot chat with this model: \(why)") }
        let engine = EngineCore(model: model.transformer, tokenizer: model.tokenizer,
                                memPool: try modelArguments.makeMemPool(for: model))
        var messages: [ChatMessage] = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
        var nextID: RequestID = 1
        func reply(to text: String) throws {
            messages.append(ChatMessage(role: "user", content: text))
            let tokens = model.chatTemplate.encode(messages, with: model.tokenizer)
            var answer = ""
            do {
                _ = try runToCompletion(engine, request: GenerationRequest(id: nextID, promptTokens: tokens, sampling: sampling.parameters)) {
                    answer += $0
                    Output.write($0)
                }
            } catch let error as EngineError {
                throw CLIError(error.description)
            }
            nextID += 1
            Output.write("\n")
            messages.append(ChatMessage(role: "assistant", content: answer))
        }
        if let prompt {
            try reply(to: prompt)
            return
        }
        let interactive = isatty(STDIN_FILENO) != 0
        while true {
            if interactive { FileHandle.standardError.write(Data("> ".utf8)) }
            guard let line = readLine() else { break }
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text == "/exit" || text == "/quit" { break }
            try reply(to: text)
        }
    }
}
