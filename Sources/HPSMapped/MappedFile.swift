import Glibc

/// A file mapped into memory; unmapped when the last reference goes.
final class MappedFile: @unchecked Sendable {
    /// The first byte, or nil for an empty file.
    let base: UnsafeMutableRawPointer?
    /// Bytes mapped.
    let length: Int
    let path: String

    /// Maps `path` whole, read-only and shared, so that every process serving
    /// the same files shares their pages in the page cache.
    init(readOnly path: String) throws(MappedError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(path: path, operation: "open", reason: MappedError.lastError()) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .io(path: path, operation: "stat", reason: MappedError.lastError()) }
        length = Int(info.st_size)
        guard length > 0 else { base = nil; return }
        let address = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0)
        guard let address, address != MAP_FAILED else {
            throw .io(path: path, operation: "map", reason: MappedError.lastError())
        }
        base = address
    }

    deinit {
        if let base { munmap(base, length) }
    }

    /// Tells the kernel how the mapping will be read (`MADV_WILLNEED`: start
    /// reading it in now, in the background; `MADV_RANDOM`: no readahead).
    func advise(_ advice: Int32) {
        if let base { _ = madvise(base, length, advice) }
    }
}

/// The size and modification time of a file, which an index records so that
/// it is rebuilt when its source files change.
struct FileStamp: Equatable {
    var size: UInt64
    var seconds: Int64
    var nanoseconds: Int64

    init(size: UInt64, seconds: Int64, nanoseconds: Int64) {
        self.size = size
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    init(path: String) throws(MappedError) {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .io(path: path, operation: "stat", reason: MappedError.lastError()) }
        size = UInt64(info.st_size)
        seconds = Int64(info.st_mtim.tv_sec)
        nanoseconds = Int64(info.st_mtim.tv_nsec)
    }
}
