import ArgumentParser
import Logging

@main
struct MemServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memserve",
        abstract: "LLM serving with context caching and prefill/decode disaggregation over an elastic KV memory pool.",
        subcommands: [Serve.self, RouterCommand.self, Instance.self, Generate.self, Chat.self, BenchCommand.self])

    static func bootstrapLogging(verbose: Bool) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = verbose ? .debug : .info
            return handler
        }
    }
}
