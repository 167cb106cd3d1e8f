import Engine
import Foundation
import MemPool

/// Blocks a receiver set aside for an incoming transfer: `table[0..<have]` are blocks it
/// already caches for the same tokens (retained), `table[have...]` are fresh and wait for data.
/// Data only: it crosses from the receiver's engine thread to whatever moves the bytes.
public struct KVReservation: Sendable, Equatable {
    public var table: [BlockID]
    public var have: Int
    /// Addresses of the fresh blocks (`table[have...]`), valid while the reservation is held.
    public var addresses: [UInt]

    /// Blocks the sender must still send.
    public var missing: Int { table.count - have }
}

/// Why a receiver refused a transfer.
public enum KVTransferError: Error, Equatable, CustomStringConvertible {
    /// A cache insert (`transferWithInsert`) found no free or evictable room; it does not wait,
    /// since the sender only meant to save a recompute.
    case noRoom(blocks: Int)
    /// A spill could send only blocks after the first `needed`, and the receiver has fewer.
    case peerLacksPrefix(have: Int, needed: Int)

    public var description: String {
        switch self {
        case let .noRoom(blocks): "no room for \(blocks) blocks: every block is in use"
        case let .peerLacksPrefix(have, needed): "the receiver caches \(have) leading blocks; this transfer needs it to have \(needed)"
        }
    }
}

/// The receiving side of the paper's distributed MemPool API (`PeerLink` is the sending side).
/// The transfer unit is the "huge block": all layers' K and V of a block's tokens, contiguous,
/// so moving n blocks is n copies of `blockBytes`.
///
/// A transfer is three steps on the receiver: `reserve` (on its engine thread: match its prompt
/// tree for a delta, allocate the rest), the copy (any thread: nothing else touches fresh blocks,
/// and the sender holds its blocks, which nothing writes once computed), then `commit` (engine
/// thread: index in the prompt tree) or `cancel`. `InstanceNode.receiveKV` runs them for every
/// link; `transfer` runs them between two pools of one thread (the copy `bench transfer` times).
public enum KVTransfer {
    /// Reserves room for `blockCount` incoming blocks. With `tokens`, blocks the receiver already
    /// caches for them are reused (retained) and only the rest is allocated: a delta.
    /// Returns nil when the receiver has no room (nothing changed).
    /// With `guest` (a peer's spill into the peer tier) the fresh blocks are guest blocks, which
    /// never evict the receiver's own, and the blocks it had stay whoever's they were.
    public static func reserve(tokens: ArraySlice<Int32>?, blockCount: Int, in receiver: MemPool,
                               guest: Bool = false) -> KVReservation? {
        var table = tokens.map { receiver.acquirePrefix(Array($0), maxBlocks: blockCount, claim: !guest) } ?? []
        let have = table.count
        let need = blockCount - have
        guard let fresh = guest ? receiver.allocateGuest(need) : receiver.allocate(need) else {
            receiver.release(table)
            return nil
        }
        table += fresh
        let addresses = fresh.map { UInt(bitPattern: receiver.blockPointer($0)) }
        return KVReservation(table: table, have: have, addresses: addresses)
    }

    /// The data has arrived: with `tokens`, indexes the whole blocks in the receiver's prompt
    /// tree (reusing any block another transfer cached meanwhile). Returns the table, held by
    /// the caller.
    public static func commit(_ reservation: KVReservation, tokens: ArraySlice<Int32>?, in receiver: MemPool,
                              guest: Bool = false) -> [BlockID] {
        var table = reservation.table
        guard let tokens else { return table }
        let bt = receiver.blockTokens
        let whole = min(tokens.count / bt, table.count)
        if whole > 0 {
            var head = Array(table[0..<whole])
            receiver.insertAndAdopt(tokens: Array(tokens.prefix(whole * bt)), table: &head, claim: !guest)
            table.replaceSubrange(0..<whole, with: head)
        }
        return table
    }

    /// Checks that the sender has every block the receiver lacks (0 addresses: blocks the
    /// sender does not hold, which the receiver must have).
    static func check(_ addresses: ArraySlice<UInt>, have: Int) throws(KVTransferError) {
        if let gap = addresses.lastIndex(of: 0), gap >= have {
            throw .peerLacksPrefix(have: have, needed: gap - addresses.startIndex + 1)
        }
    }

    /// The data will not arrive (the sender went away): drops the reservation.
    public static func cancel(_ reservation: KVReservation, in receiver: MemPool) {
        receiver.release(reservation.table)
    }

    /// `transfer`: allocates `source.count` blocks in `receiver` and copies the data.
    /// Returns the receiver's blocks (held by the caller), or nil when it has no room.
    public static func transfer(_ source: ArraySlice<BlockID>, from sender: MemPool, to receiver: MemPool) -> [BlockID]? {
        guard let r = reserve(tokens: nil, blockCount: source.count, in: receiver) else { return nil }
        copy(source, from: sender, into: r, blockBytes: receiver.blockBytes)
        return commit(r, tokens: nil, in: receiver)
    }

    private static func copy(_ source: ArraySlice<BlockID>, from sender: MemPool, into r: KVReservation, blockBytes: Int) {
        precondition(sender.blockBytes == blockBytes, "pools of different block layouts")
        copy(source.map { UInt(bitPattern: sender.blockPointer($0)) }[...], into: r, blockBytes: blockBytes)
    }

    /// Copies the blocks at `source` (held by their owner) into the reservation's fresh blocks:
    /// one copy per block.
    static func copy(_ source: ArraySlice<UInt>, into r: KVReservation, blockBytes: Int) {
        for (dst, src) in zip(r.addresses, source) {
            UnsafeMutableRawPointer(bitPattern: dst)!.copyMemory(from: UnsafeRawPointer(bitPattern: src)!, byteCount: blockBytes)
        }
    }
}
