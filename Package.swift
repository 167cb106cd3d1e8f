// swift-tools-version:6.0
import PackageDescription
import Foundation

// Hot loops are compiled for the CPU's vector width: AVX-512 where the CPU has it, AVX2+FMA
// otherwise. MEMSERVE_TARGET_CPU overrides the choice (e.g. "haswell", or "" for generic x86-64).
func targetCPUFlags() -> [String] {
    if let forced = ProcessInfo.processInfo.environment["MEMSERVE_TARGET_CPU"] {
        return forced.isEmpty ? [] : ["-target-cpu", forced]
    }
    #if os(Linux) && arch(x86_64)
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [] }
    let flags = Set(info.split(separator: "\n").first { $0.hasPrefix("flags") }?
        .split(separator: " ").map(String.init) ?? [])
    if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512_vnni"]) { return ["-target-cpu", "icelake-server"] }
    if flags.isSuperset(of: ["avx2", "fma", "f16c"]) { return ["-target-cpu", "haswell"] }
    return []
    #else
    return []
    #endif
}

let fast: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked"] + targetCPUFlags()),
]

#if os(Linux)
let blasDependency: [Target.Dependency] = ["CBLAS"]
let blasTargets: [Target] = [
    .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                   providers: [.apt(["libopenblas-dev"])]),
]
#else
let blasDependency: [Target.Dependency] = []
let blasTargets: [Target] = []
#endif

let package = Package(
    name: "MemServe",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "memserve", targets: ["MemServeCLI"]),
        .library(name: "MemServeEngine", targets: ["Engine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.65.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.20.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.0.0"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.0.0"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.20.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.29.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.0.0"),
    ],
    targets: blasTargets + [
        // Numeric kernels: BLAS wrapper, quantized block formats and mat-muls, vector ops, thread pool.
        .target(name: "Kernels", dependencies: blasDependency, swiftSettings: fast),
        // GGUF container format: metadata, tensor directory, memory-mapped data.
        .target(name: "GGUF"),
        // Byte-level BPE tokenizer and chat templates built from GGUF metadata.
        .target(name: "Tokenizer", dependencies: ["GGUF"], swiftSettings: fast),
        // Model architectures (registry keyed by GGUF architecture name), weights, paged KV layout, forward pass.
        .target(name: "Model", dependencies: ["Kernels", "GGUF"], swiftSettings: fast),
        // KV block pool, prompt tree, tiers and events: the paper's MemPool.
        .target(name: "MemPool", swiftSettings: fast),
        // The serving contract shared by the HTTP edge, the router and the engine: requests,
        // outputs, sampling parameters, the served model's description, `InferenceBackend`.
        .target(name: "Serving", dependencies: [
            "Tokenizer", "GGUF", "MemPool",
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // The global scheduler: exact global prompt trees fed by MemPool events, routing policies,
        // the transfer-or-recompute cost model. Data only: no networking, no threads, no clocks.
        .target(name: "Scheduler", dependencies: ["MemPool"], swiftSettings: fast),
        // Sequences, batching, sampling, generation loop.
        .target(name: "Engine", dependencies: [
            "Serving", "Model", "Tokenizer", "Kernels", "MemPool",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: fast),
        // The wire protocol between processes: code generated from Protos/ (scripts/generate-grpc.sh).
        .target(name: "Wire", dependencies: [
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ]),
        // The global scheduler's seat: the OpenAI front end's backend over instances in other
        // processes (or this one), routing by the global prompt trees. No engine, no weights.
        .target(name: "Router", dependencies: [
            "Serving", "MemPool", "Wire", "Scheduler", "Membership",
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        // Instances in roles, KV transfer between their MemPools (in process and over gRPC),
        // prefill/decode disaggregation, deployments in one process.
        .target(name: "Cluster", dependencies: [
            "Engine", "MemPool", "Model", "Tokenizer", "Wire", "Router",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ]),
        // Elastic membership through etcd (leases, watches) over etcd's JSON gateway.
        .target(name: "Membership", dependencies: [
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // Benchmarks behind `memserve bench`.
        .target(name: "Bench", dependencies: [
            "Engine", "Cluster", "Router", "Scheduler", "Model", "Kernels", "MemPool", "GGUF", "Server", "LoadGen", "Serving",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: fast),
        // OpenAI-compatible HTTP server over an inference backend, with Prometheus metrics.
        .target(name: "Server", dependencies: [
            "Serving", "Tokenizer", "MemPool",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // Load generator for any OpenAI-compatible endpoint: workloads, streaming client, statistics.
        // HTTP only, so it measures our server and others the same way.
        .target(name: "LoadGen", dependencies: [
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        .executableTarget(name: "MemServeCLI", dependencies: [
            "Engine", "Cluster", "Router", "Bench", "Model", "Tokenizer", "GGUF", "Server", "Scheduler", "LoadGen",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels"]),
        .testTarget(name: "GGUFTests", dependencies: [
            "GGUF", "Kernels", .product(name: "PropertyBased", package: "swift-property-based"),
        ], resources: [.copy("Fixtures")]),
        .testTarget(name: "TokenizerTests", dependencies: [
            "Tokenizer", "GGUF", "Kernels", .product(name: "PropertyBased", package: "swift-property-based"),
        ], resources: [.copy("Fixtures")]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "Kernels", "GGUF", "Tokenizer", "Engine"], resources: [.copy("Fixtures")]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Model", "Tokenizer", "GGUF", "MemPool"]),
        .testTarget(name: "MemPoolTests", dependencies: ["MemPool", "Kernels"]),
        .testTarget(name: "ClusterTests", dependencies: [
            "Cluster", "Router", "Scheduler", "Membership", "Engine", "Model", "MemPool", "GGUF", "Wire", "Kernels",
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "PropertyBased", package: "swift-property-based"),
        ]),
        .testTarget(name: "MembershipTests", dependencies: [
            "Membership",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .testTarget(name: "SchedulerTests", dependencies: ["Scheduler", "MemPool", "Kernels"]),
        .testTarget(name: "ServerTests", dependencies: [
            "Server", "Engine", "Model", "GGUF",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "PropertyBased", package: "swift-property-based"),
        ]),
        // Long mixed loads through the HTTP front end, in one engine and in PD over loopback gRPC.
        .testTarget(name: "SoakTests", dependencies: ["Bench", "Server", "Cluster", "Router", "Engine", "Model", "GGUF"]),
        .testTarget(name: "LoadGenTests", dependencies: ["LoadGen", "Server", "Engine", "Model", "GGUF"]),
    ]
)
