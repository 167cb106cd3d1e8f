#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Page alignment for the tier areas: more than the 64 bytes vector loads want, and it lets huge
/// blocks start on page boundaries when `blockBytes` is a multiple of the page size.
let tierAlignment = 4096

/// Allocates one aligned, uninitialized area. Pages are left untouched so that a large tier costs
/// address space, not memory, until blocks are written.
func allocateTierArea(bytes: Int, tier: BlockTier) throws(MemPoolError) -> UnsafeMutableRawPointer {
    var p: UnsafeMutableRawPointer? = nil
    let rc = posix_memalign(&p, tierAlignment, Swift.max(bytes, tierAlignment))
    guard rc == 0, let p else { throw .outOfMemory(tier: tier, bytes: bytes) }
    return p
}

/// Returns an area from ``allocateTierArea(bytes:tier:)``.
func freeTierArea(_ p: UnsafeMutableRawPointer) { free(p) }

/// The cold tier's bytes: a second memory area, or a file read and written with pread/pwrite.
final class ColdStorage {
    let blockBytes: Int
    let capacity: Int
    /// The memory area, when the tier is in memory.
    let base: UnsafeMutableRawPointer?
    /// The file descriptor, when the tier is a file; -1 otherwise.
    let fd: Int32

    init(blockBytes: Int, capacity: Int, filePath: String?) throws(MemPoolError) {
        self.blockBytes = blockBytes
        self.capacity = capacity
        if capacity == 0 {
            base = nil
            fd = -1
        } else if let path = filePath {
            let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
            guard fd >= 0 else { throw .coldFile(path: path, operation: "open", errno: errno) }
            // Sized up front so a full disk shows at start-up, not in the middle of a swap.
            if ftruncate(fd, off_t(capacity) * off_t(blockBytes)) != 0 {
                let e = errno
                close(fd)
                throw .coldFile(path: path, operation: "ftruncate", errno: e)
            }
            self.fd = fd
            base = nil
        } else {
            base = try allocateTierArea(bytes: capacity * blockBytes, tier: .cold)
            fd = -1
        }
    }

    deinit {
        if let base { freeTierArea(base) }
        if fd >= 0 { close(fd) }
    }

    /// Whether the tier is a file (its blocks have no address).
    var isFile: Bool { fd >= 0 }

    /// The address of a cold slot, when the tier is in memory.
    func pointer(_ slot: Int) -> UnsafeMutableRawPointer? { base.map { $0 + slot * blockBytes } }

    /// Copies one block into a cold slot; returns 0 or an errno.
    func write(slot: Int, from src: UnsafeRawPointer) -> Int32 {
        if let base {
            (base + slot * blockBytes).copyMemory(from: src, byteCount: blockBytes)
            return 0
        }
        return whole { done in pwrite(fd, src + done, blockBytes - done, off_t(slot * blockBytes + done)) }
    }

    /// Copies one cold slot out; returns 0 or an errno.
    func read(slot: Int, into dst: UnsafeMutableRawPointer) -> Int32 {
        if let base {
            dst.copyMemory(from: base + slot * blockBytes, byteCount: blockBytes)
            return 0
        }
        return whole { done in pread(fd, dst + done, blockBytes - done, off_t(slot * blockBytes + done)) }
    }

    /// Repeats a partial pread/pwrite (given the bytes done so far) until the block is done;
    /// returns 0 or an errno. The file was sized at start-up, so 0 bytes moved means it was
    /// truncated behind our back.
    private func whole(_ io: (Int) -> Int) -> Int32 {
        var done = 0
        while done < blockBytes {
            let n = io(done)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if n == 0 { return EIO }
            done += n
        }
        return 0
    }
}
