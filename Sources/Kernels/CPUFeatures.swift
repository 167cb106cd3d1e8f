import Foundation

/// What the CPU offers, read once from the OS.
public enum CPUFeatures {
    /// x86 flags from /proc/cpuinfo (empty elsewhere).
    public static let flags: Set<String> = {
        #if os(Linux)
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
        return Set(line.split(separator: " ").map(String.init))
        #else
        return []
        #endif
    }()

    /// With AVX-512 the quantized mat-mul decodes weights in registers faster than BLAS multiplies
    /// fp32 copies, at every batch size measured (1–512 rows); with AVX2 or NEON sgemm wins for
    /// many rows. (Apple silicon: Accelerate's sgemm runs on the matrix unit, so it wins there too.)
    public static var quantizedKernelsBeatGEMM: Bool {
        flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl"])
    }
}
