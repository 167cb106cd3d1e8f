import Router
import Cluster
import Engine
import Foundation
import Kernels
import MemPool
import Model

/// `memserve bench transfer`: KV transfer between two MemPools in one process, for the paper's
/// huge-block layout (one copy per block) against a per-layer layout (2 × layers copies per
/// block), and over loopback gRPC through the real network path, beside this machine's memcpy
/// and raw TCP loopback bandwidth measured in the same run.
public enum TransferBench {
    /// Why the benchmark could not run.
    public enum Failure: Error, CustomStringConvertible {
        case noRoom(blocks: Int)
        case incompleteTransfer(moved: Int, expected: Int)

        public var description: String {
            switch self {
            case let .noRoom(blocks): "bench transfer: a MemPool has no room for \(blocks) blocks"
            case let .incompleteTransfer(moved, expected):
                "bench transfer: the receiver took \(moved) of \(expected) blocks (it should cache none of fresh tokens)"
            }
        }
    }


    public struct Result: Codable, Sendable {
        public var block_bytes: Int
        public var layers: Int
        /// GB/s of `KVTransfer.transfer` (allocation included), keyed by block count.
        public var inprocess_gbps: [String: Double]
        /// GB/s when each block moves as 2 × layers separate K/V planes (vLLM's paged layout).
        public var inprocess_per_layer_gbps: [String: Double]
        public var memcpy_gbps: Double
        /// GB/s of `RemoteTransfer.transferWithInsert` to an `InstanceNode` of this process over
        /// loopback gRPC (header, delta answer, chunks, insert and reply), keyed by block count.
        public var grpc_gbps: [String: Double]
        /// Raw TCP over 127.0.0.1 (plain sockets, one stream) for the bytes of `tcpBlocks` blocks.
        public var tcp_loopback_gbps: Double
        /// `grpc_gbps["1024"] / tcp_loopback_gbps`: how much of the link the gRPC path uses.
        public var grpc_vs_tcp_1024: Double
    }

    /// Blocks whose bytes the TCP loopback reference moves.
    static let tcpBlocks = 1024

    /// - Parameter peer: send the gRPC transfers to this instance (another process, e.g.
    ///   `memserve instance --role decode` with room for 1,024 blocks) instead of one in this process.
    public static func run(model: LoadedModel, counts: [Int] = [1, 16, 256, 1024], peer: PeerAddress? = nil) async throws -> Result {
        let layout = model.transformer.kvLayout
        let n = max(1, counts.max() ?? 1)
        let sender = try model.makeMemPool(hotBlocks: n), receiver = try model.makeMemPool(hotBlocks: n)
        guard let source = sender.allocate(n) else { throw Failure.noRoom(blocks: n) }
        for b in source { sender.blockPointer(b).initializeMemory(as: UInt8.self, repeating: 7, count: layout.blockBytes) }
        // Touch the receiver's pages once so first-touch page faults are not timed.
        try touch(receiver)

        var huge: [String: Double] = [:], perLayer: [String: Double] = [:]
        for count in counts {
            let reps = max(3, min(200, 2048 / count))
            huge[String(count)] = try rate(bytes: count * layout.blockBytes, reps: reps) {
                guard let moved = KVTransfer.transfer(source[0..<count], from: sender, to: receiver) else { throw Failure.noRoom(blocks: count) }
                receiver.release(moved)
            }
            let plane = layout.planeFloats * MemoryLayout<Float>.stride
            perLayer[String(count)] = try rate(bytes: count * layout.blockBytes, reps: reps) {
                guard let moved = receiver.allocate(count) else { throw Failure.noRoom(blocks: count) }
                for (dst, src) in zip(moved, source[0..<count]) {
                    let d = receiver.blockPointer(dst), s = sender.blockPointer(src)
                    for p in 0..<(2 * layout.layerCount) {
                        (d + p * plane).copyMemory(from: s + p * plane, byteCount: plane)
                    }
                }
                receiver.release(moved)
            }
        }
        let memcpy = Calibration.memcpyGBps()
        let tcp = try LoopbackTCP.gbps(bytes: tcpBlocks * layout.blockBytes, reps: 3)
        let addresses = source.map { UInt(bitPattern: sender.blockPointer($0)) }
        let grpc = try await grpcRates(model: model, addresses: addresses, counts: counts, peer: peer)
        sender.release(source)
        return Result(block_bytes: layout.blockBytes, layers: layout.layerCount, inprocess_gbps: huge,
                      inprocess_per_layer_gbps: perLayer, memcpy_gbps: memcpy, grpc_gbps: grpc,
                      tcp_loopback_gbps: tcp, grpc_vs_tcp_1024: (grpc["1024"] ?? 0) / tcp)
    }

    /// Sends the first `count` of `addresses` (sender blocks) to a decode `InstanceNode` listening
    /// on 127.0.0.1, for each count; best-of-reps GB/s. Every transfer carries fresh random
    /// tokens, since the receiver indexes what it gets and would otherwise answer that it has it.
    static func grpcRates(model: LoadedModel, addresses: [UInt], counts: [Int], peer: PeerAddress?) async throws -> [String: Double] {
        let layout = model.transformer.kvLayout
        var local: InstanceNode?
        if peer == nil {
            let receiverModel = model.sibling(threads: 1)
            let pool = try receiverModel.makeMemPool(hotBlocks: addresses.count + 64)
            try touch(pool)
            local = InstanceNode(model: receiverModel, memPool: pool, role: .decode, mode: .caching2,
                                 listen: PeerAddress(host: "127.0.0.1", port: 0))
        }
        let node = local
        let serving = Task { try await node?.run() }
        let clients = PeerClients()
        func stop() async {
            clients.shutdown()
            node?.shutdown()
            _ = await serving.result
        }
        do {
            let address = if let peer { peer } else { try await node!.listeningAddress }
            let client = try clients.client(for: address)
            let vocab = UInt64(max(1, model.transformer.configuration.vocabularySize))
            var random = SplitMix64(seed: 0x6B76_5F67_7270_6300)
            /// One transfer of `count` blocks under fresh tokens; returns its nanoseconds.
            func transfer(_ count: Int) async throws -> Double {
                let tokens = (0..<count * layout.blockTokens).map { _ in Int32(truncatingIfNeeded: random.next() % vocab) }
                let blocks = Array(addresses.prefix(count))
                let t0 = DispatchTime.now().uptimeNanoseconds
                let moved = try await RemoteTransfer.transferWithInsert(to: client, tokens: tokens, addresses: blocks,
                                                                        blockBytes: layout.blockBytes)
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - t0)
                guard moved == count else { throw Failure.incompleteTransfer(moved: moved, expected: count) }
                return elapsed
            }
            _ = try await transfer(addresses.count) // connection setup, first-use costs
            var rates: [String: Double] = [:]
            for count in counts where count <= addresses.count {
                var best = Double.infinity
                for _ in 0..<max(3, min(20, 2048 / count)) { best = min(best, try await transfer(count)) }
                rates[String(count)] = Double(count * layout.blockBytes) / best
            }
            await stop()
            return rates
        } catch {
            await stop()
            throw error
        }
    }

    /// Writes every block of `pool` once, so first-touch page faults are not timed.
    static func touch(_ pool: MemPool) throws {
        guard let all = pool.allocate(pool.hotBlocks) else { throw Failure.noRoom(blocks: pool.hotBlocks) }
        for b in all { pool.blockPointer(b).initializeMemory(as: UInt8.self, repeating: 0, count: pool.blockBytes) }
        pool.release(all)
    }

    /// Best-of-`reps` bytes per second, in GB/s.
    static func rate(bytes: Int, reps: Int, _ body: () throws -> Void) rethrows -> Double {
        var best = Double.infinity
        for _ in 0..<reps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0))
        }
        return Double(bytes) / best
    }
}
