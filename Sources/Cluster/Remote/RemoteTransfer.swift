import Router
import Engine
import Foundation
import GRPCCore
import MemPool
import Wire

/// Moving KV blocks over the wire: the sender packs whole blocks (huge-block layout) into
/// chunk messages; the receiver copies them into the blocks it reserved (`KVReservation`).
public enum RemoteTransfer {
    /// Blocks per chunk message for a block size (at least one).
    static func blocksPerChunk(_ blockBytes: Int) -> Int { max(1, WireTuning.chunkBytes / max(1, blockBytes)) }

    /// Sends the blocks at `addresses` (held by the caller), numbered from `firstBlock`.
    ///
    /// Blocks adjacent in memory (a run, as fresh allocations usually are) go as one chunk whose
    /// `data` wraps the blocks without copying them: the serializer copies straight from the
    /// pool into the wire buffer, and the message is serialized inside `write`, while the caller
    /// still holds the blocks. A chunk is at most `blocksPerChunk` blocks, as before.
    static func sendChunks(addresses: ArraySlice<UInt>, firstBlock: Int, blockBytes: Int,
                           write: (Memserve_V1_KVChunk) async throws -> Void) async throws {
        let per = blocksPerChunk(blockBytes), stride = UInt(blockBytes)
        var index = addresses.startIndex, block = firstBlock
        while index < addresses.endIndex {
            guard let base = UnsafeMutableRawPointer(bitPattern: addresses[index]) else {
                throw RemoteError.protocolViolation("block \(block) has a null address")
            }
            var n = 1
            while n < per, index + n < addresses.endIndex, addresses[index + n] == addresses[index + n - 1] &+ stride { n += 1 }
            var chunk = Memserve_V1_KVChunk()
            chunk.firstBlock = Int64(block)
            chunk.data = Data(bytesNoCopy: base, count: n * blockBytes, deallocator: .none)
            try await write(chunk)
            index += n
            block += n
        }
    }

    /// Receives `reservation.missing` blocks, in order, into the reservation's fresh blocks.
    static func receiveChunks(into reservation: KVReservation, blockBytes: Int,
                              next: () async throws -> Memserve_V1_KVChunk?) async throws {
        var expected = reservation.have
        let end = reservation.table.count
        while expected < end {
            guard let chunk = try await next() else {
                throw RPCError(code: .cancelled, message: "the sender stopped after \(expected) of \(end) blocks")
            }
            let n = chunk.data.count / max(1, blockBytes)
            guard chunk.firstBlock == expected, n > 0, n * blockBytes == chunk.data.count, expected + n <= end else {
                throw RPCError(code: .invalidArgument,
                               message: "KV chunk at block \(chunk.firstBlock) with \(chunk.data.count) bytes; expected block \(expected), a multiple of \(blockBytes) bytes, at most \(end - expected) blocks")
            }
            chunk.data.withUnsafeBytes { src in
                for i in 0..<n {
                    let dst = UnsafeMutableRawPointer(bitPattern: reservation.addresses[expected - reservation.have + i])!
                    dst.copyMemory(from: src.baseAddress! + i * blockBytes, byteCount: blockBytes)
                }
            }
            expected += n
        }
    }

    /// transfer_with_insert to a remote instance: it answers which leading blocks it caches,
    /// receives the rest and indexes `tokens` in its prompt tree. Returns the blocks sent.
    ///
    /// - Parameters:
    ///   - tokens: tokens whose KV the blocks hold (whole blocks only are indexed).
    ///   - addresses: the blocks, held by the caller until this returns.
    ///   - guest: a spill into the peer's peer tier (see `PeerLink.transferWithInsert`).
    public static func transferWithInsert(to client: PeerClients.Client, tokens: [Int32], addresses: [UInt],
                                          blockBytes: Int, guest: Bool = false) async throws -> Int {
        let accepted = Promise<Int>()
        let header = Memserve_V1_TransferHeader.with {
            $0.tokens = tokens
            $0.blockCount = Int64(addresses.count)
            $0.blockBytes = Int64(blockBytes)
            $0.guest = guest
        }
        let request = StreamingClientRequest<Memserve_V1_TransferMessage> { writer in
            var m = Memserve_V1_TransferMessage()
            m.header = header
            try await writer.write(m)
            let have = try await accepted.value()
            guard (0...addresses.count).contains(have) else { throw RemoteError.protocolViolation("peer has \(have) of \(addresses.count) blocks") }
            try KVTransfer.check(addresses[...], have: have)
            try await sendChunks(addresses: addresses[have...], firstBlock: have, blockBytes: blockBytes) { chunk in
                var m = Memserve_V1_TransferMessage()
                m.chunk = chunk
                try await writer.write(m)
            }
        }
        return try await client.transferWithInsert(request: request, options: PeerClients.callOptions) { response in
            defer { accepted.fail(RemoteError.protocolViolation("the transfer ended before it was accepted")) }
            var moved: Int?
            for try await reply in response.messages {
                switch reply.part {
                case let .accepted(a)?: accepted.succeed(Int(a.haveBlocks))
                case let .done(d)?: moved = Int(d.movedBlocks)
                case nil: break
                }
            }
            guard let moved else { throw RemoteError.protocolViolation("the transfer ended without a result") }
            return moved
        }
    }
}
