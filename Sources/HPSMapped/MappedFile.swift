import CHPSSupport
import Glibc

/// A file mapped into memory; unmapped when the last reference goes.
///
/// The mapping is registered with the SIGBUS handler of `CHPSSupport`
/// (`hps_mapped_region_register`): if the file shrinks while it is mapped,
/// a read past its new end does not end the process but turns the whole
/// mapping into zero pages and counts a fault (`faults`), which readers
/// check after reading to discard what they read.
package final class MappedFile: @unchecked Sendable {
    /// The first byte, or nil for an empty file.
    package let base: UnsafeMutableRawPointer?
    /// Bytes mapped.
    let length: Int
    let path: String
    /// The file as it was mapped: its device, inode, size and modification time.
    let identity: FileIdentity
    /// The SIGBUS handler's slot for the mapping, or -1 (none: an empty file,
    /// or no slot free, and then a shrunk file ends the process as before).
    private let region: Int32

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
        identity = FileIdentity(info)
        guard length > 0 else { base = nil; region = -1; return }
        let address = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0)
        guard let address, address != MAP_FAILED else {
            throw .io(path: path, operation: "map", reason: MappedError.lastError())
        }
        base = address
        region = hps_mapped_region_register(address, length)
    }

    deinit {
        hps_mapped_region_unregister(region)
        if let base { munmap(base, length) }
    }

    /// SIGBUS faults taken reading the mapping since it was made: non-zero
    /// once the file shrank under it, and from then on it reads as zeros.
    var faults: UInt64 { hps_mapped_region_faults(region) }

    /// How the file at `path` differs from the one mapped, or nil if it does not.
    func change() -> FileIdentity.Change? {
        var info = stat()
        guard stat(path, &info) == 0 else { return .removed }
        return identity.change(to: FileIdentity(info))
    }

    /// Tells the kernel how the mapping will be read (`MADV_WILLNEED`: start
    /// reading it in now, in the background; `MADV_RANDOM`: no readahead).
    func advise(_ advice: Int32) {
        if let base { _ = madvise(base, length, advice) }
    }
}

/// Which file a path named when it was mapped, and its size and modification
/// time then: enough to tell a file rewritten in place from one replaced.
struct FileIdentity: Equatable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var seconds: Int64
    var nanoseconds: Int64

    init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        seconds = Int64(info.st_mtim.tv_sec)
        nanoseconds = Int64(info.st_mtim.tv_nsec)
    }

    /// How a mapped file's path changed.
    enum Change: Equatable {
        /// The same file was written: the mapping shows the new bytes, mixed
        /// with the old ones for as long as the writer runs.
        case modified
        /// Another file was renamed over the path: the mapping still shows
        /// the old file, whole, which stays alive while mapped.
        case replaced
        /// The path is gone: the mapping still shows the old file.
        case removed
    }

    /// The change from `self` (the file mapped) to `now` (the path's file today), or nil.
    func change(to now: FileIdentity) -> Change? {
        if now.device != device || now.inode != inode { return .replaced }
        if now != self { return .modified }
        return nil
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
