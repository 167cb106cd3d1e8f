#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Owns the bytes a `GGUFFile` reads: either a read-only private mapping of a file or a heap copy.
/// Releasing it unmaps or frees them, which is why tensor views live only as long as the file object.
final class FileBuffer: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    /// The heap block to free, or nil for a mapping.
    private let allocation: UnsafeMutableRawPointer?

    /// Maps `path` with `PROT_READ` / `MAP_PRIVATE`; the kernel pages weights in on demand.
    init(mapping path: String) throws(GGUFError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT { throw .fileNotFound(path) }
            throw .cannotOpen(path: path, reason: systemError(code))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .cannotOpen(path: path, reason: systemError(errno)) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw .cannotOpen(path: path, reason: "not a regular file")
        }
        let size = Int(info.st_size)
        // mmap rejects zero lengths; an empty file is simply one that is truncated at the magic.
        guard size > 0 else { throw .truncated(what: "magic", offset: 0) }
        let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let address, address != MAP_FAILED else {
            throw .cannotOpen(path: path, reason: "mmap failed: " + systemError(errno))
        }
        bytes = UnsafeRawBufferPointer(start: address, count: size)
        allocation = nil
    }

    /// Copies `source` into page-aligned heap memory so tensor data gets the same alignment as a mapping.
    init(copying source: [UInt8]) {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(source.count, 1), alignment: 4096)
        source.withUnsafeBytes { source in
            if let base = source.baseAddress { memory.copyMemory(from: base, byteCount: source.count) }
        }
        bytes = UnsafeRawBufferPointer(start: memory, count: source.count)
        allocation = memory
    }

    deinit {
        if let allocation {
            allocation.deallocate()
        } else {
            munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count)
        }
    }
}

func systemError(_ code: Int32) -> String {
    guard let message = strerror(code) else { return "errno \(code)" }
    return String(cString: message)
}
