import Engine
import Foundation
import MemPool

/// The paper's distributed MemPool API between two pools in one process.
///
/// A block holds all layers' K and V of its tokens contiguously (the "huge block" layout), so
/// moving n blocks is n copies of `blockBytes`. The receiver allocates; the sender's blocks must
/// be held (referenced) by the sender while the copy runs, which makes reading them from the
/// receiver's thread safe: nothing writes a held, fully computed block.
public enum KVTransfer {
    /// `transfer`: allocates `source.count` blocks in `receiver` and copies the data.
    /// Returns the receiver's blocks (held by the caller), or nil when it has no room.
    public static func transfer(_ source: ArraySlice<BlockID>, from sender: MemPool, to receiver: MemPool) -> [BlockID]? {
        guard let fresh = receiver.allocate(source.count) else { return nil }
        precondition(sender.blockBytes == receiver.blockBytes, "pools of different block layouts")
        for (dst, src) in zip(fresh, source) {
            receiver.blockPointer(dst).copyMemory(from: sender.blockPointer(src), byteCount: receiver.blockBytes)
        }
        return fresh
    }

    /// `transfer_with_insert`: sends only the blocks of `tokens`' KV that the receiver does not
    /// already cache (a delta), then indexes the whole prefix in the receiver's prompt tree.
    ///
    /// - Parameters:
    ///   - tokens: tokens whose KV `source` holds (block `i` holds tokens `i·bt ..< (i+1)·bt`).
    ///   - source: the sender's block table (held by the sender).
    /// - Returns: the receiver's table for all of `source` (held by the caller) and how many
    ///   blocks moved, or nil when the receiver has no room (nothing changed).
    public static func transferWithInsert(tokens: ArraySlice<Int32>, source: [BlockID], from sender: MemPool,
                                          to receiver: MemPool) -> (table: [BlockID], moved: Int)? {
        let bt = receiver.blockTokens
        let tokenArray = Array(tokens)
        let match = receiver.match(tokenArray)
        var have = min(match.blocks.count, source.count)
        var table = Array(match.blocks[0..<have])
        receiver.retain(table)
        if table.contains(where: { $0.tier == .cold }) {
            if let hot = try? receiver.swapIn(table) {
                table = hot
            } else {
                let head = table.firstIndex { $0.tier == .cold } ?? table.count
                receiver.release(Array(table[head...]))
                table.removeLast(table.count - head)
                have = head
            }
        }
        guard let moved = transfer(source[have...], from: sender, to: receiver) else {
            receiver.release(table)
            return nil
        }
        table += moved
        let whole = min(tokenArray.count / bt, table.count)
        if whole > 0 {
            var head = Array(table[0..<whole])
            receiver.insertAndAdopt(tokens: Array(tokenArray[0..<whole * bt]), table: &head)
            table.replaceSubrange(0..<whole, with: head)
        }
        return (table, moved.count)
    }
}
