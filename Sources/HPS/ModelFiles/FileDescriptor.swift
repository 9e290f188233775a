import Glibc

/// An open POSIX file, closed when released. Reads and writes loop until
/// done, so short transfers and EINTR are handled in one place.
package final class FileDescriptor {
    let fd: Int32
    let path: String

    /// Opens `path` for reading.
    package init(reading path: String) throws(ModelFileError) {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(path: path, operation: "open", reason: Self.lastError()) }
    }

    /// Creates or truncates `path` for writing.
    package init(writing path: String) throws(ModelFileError) {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io(path: path, operation: "create", reason: Self.lastError()) }
    }

    deinit { close(fd) }

    /// The file's size in bytes.
    func size() throws(ModelFileError) -> Int {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .io(path: path, operation: "stat", reason: Self.lastError()) }
        return Int(info.st_size)
    }

    /// Reads exactly `count` bytes at `offset` into `buffer`.
    func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: Int) throws(ModelFileError) {
        var done = 0
        while done < count {
            let n = pread(fd, buffer + done, count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw .io(path: path, operation: "read", reason: n == 0 ? "the file ended early" : Self.lastError())
            }
            done += n
        }
    }

    /// The whole file at `path`: the one routine that reads a file whole
    /// (configuration files, token files, cached kernels).
    /// - Throws: `ModelFileError.io` naming the path and what failed.
    package static func readAll(path: String) throws(ModelFileError) -> [UInt8] {
        let file = try FileDescriptor(reading: path)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(file.fd, $0.baseAddress, $0.count) }
            if n > 0 {
                bytes += chunk[..<n]
            } else if n == 0 {
                return bytes
            } else if errno != EINTR {
                throw .io(path: path, operation: "read", reason: lastError())
            }
        }
    }

    /// Appends exactly `count` bytes from `buffer`.
    package func write(_ buffer: UnsafeRawPointer, count: Int) throws(ModelFileError) {
        var done = 0
        while done < count {
            let n = Glibc.write(fd, buffer + done, count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw .io(path: path, operation: "write", reason: Self.lastError()) }
            done += n
        }
    }

    /// Flushes the file to its device.
    package func sync() throws(ModelFileError) {
        guard fsync(fd) == 0 else { throw .io(path: path, operation: "sync", reason: Self.lastError()) }
    }

    static func lastError() -> String {
        String(cString: strerror(errno))
    }
}

/// Whether something exists at `path`.
func fileExists(_ path: String) -> Bool {
    access(path, F_OK) == 0
}

/// Whether `path` is a folder.
func isDirectory(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
}

/// Creates `path` and its missing parents.
package func makeDirectories(_ path: String) throws(ModelFileError) {
    var prefix = path.hasPrefix("/") ? "/" : ""
    for part in path.split(separator: "/") {
        prefix += part
        if !isDirectory(prefix) {
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw .io(path: prefix, operation: "create the folder", reason: FileDescriptor.lastError())
            }
        }
        prefix += "/"
    }
}

/// `base/relative`, or `relative` when it is absolute.
package func joinPath(_ base: String, _ relative: String) -> String {
    if relative.hasPrefix("/") || base.isEmpty { return relative }
    return base.hasSuffix("/") ? base + relative : base + "/" + relative
}

/// The permission bits of the file at `path` (`st_mode & 0o7777`), nil when it cannot be examined.
package func filePermissionBits(_ path: String) -> UInt32? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return UInt32(info.st_mode) & 0o7777
}
