import Cluster
import Engine
import Foundation
import Kernels
import MemPool
import Model

/// `memserve bench transfer`: KV transfer between two MemPools in one process, for the paper's
/// huge-block layout (one copy per block) against a per-layer layout (2 × layers copies per
/// block), beside this machine's memcpy bandwidth measured in the same run.
public enum TransferBench {
    public struct Result: Codable, Sendable {
        public var block_bytes: Int
        public var layers: Int
        /// GB/s of `KVTransfer.transfer` (allocation included), keyed by block count.
        public var inprocess_gbps: [String: Double]
        /// GB/s when each block moves as 2 × layers separate K/V planes (vLLM's paged layout).
        public var inprocess_per_layer_gbps: [String: Double]
        public var memcpy_gbps: Double
    }

    public static func run(model: LoadedModel, counts: [Int] = [1, 16, 256, 1024]) throws -> Result {
        let layout = model.transformer.kvLayout
        let n = counts.max() ?? 1
        let sender = try model.makeMemPool(hotBlocks: n), receiver = try model.makeMemPool(hotBlocks: n)
        let source = sender.allocate(n)!
        for b in source { sender.blockPointer(b).initializeMemory(as: UInt8.self, repeating: 7, count: layout.blockBytes) }
        // Touch the receiver's pages once so first-touch page faults are not timed.
        let warm = receiver.allocate(n)!
        for b in warm { receiver.blockPointer(b).initializeMemory(as: UInt8.self, repeating: 0, count: layout.blockBytes) }
        receiver.release(warm)

        var huge: [String: Double] = [:], perLayer: [String: Double] = [:]
        for count in counts {
            let reps = max(3, min(200, 2048 / count))
            huge[String(count)] = rate(bytes: count * layout.blockBytes, reps: reps) {
                let moved = KVTransfer.transfer(source[0..<count], from: sender, to: receiver)!
                receiver.release(moved)
            }
            let plane = layout.planeFloats * MemoryLayout<Float>.stride
            perLayer[String(count)] = rate(bytes: count * layout.blockBytes, reps: reps) {
                let moved = receiver.allocate(count)!
                for (dst, src) in zip(moved, source[0..<count]) {
                    let d = receiver.blockPointer(dst), s = sender.blockPointer(src)
                    for p in 0..<(2 * layout.layerCount) {
                        (d + p * plane).copyMemory(from: s + p * plane, byteCount: plane)
                    }
                }
                receiver.release(moved)
            }
        }
        sender.release(source)
        return Result(block_bytes: layout.blockBytes, layers: layout.layerCount, inprocess_gbps: huge,
                      inprocess_per_layer_gbps: perLayer, memcpy_gbps: Calibration.memcpyGBps())
    }

    /// Best-of-`reps` bytes per second, in GB/s.
    static func rate(bytes: Int, reps: Int, _ body: () -> Void) -> Double {
        var best = Double.infinity
        for _ in 0..<reps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0))
        }
        return Double(bytes) / best
    }
}
