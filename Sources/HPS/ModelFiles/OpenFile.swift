import Glibc
import SystemPackage

/// An open file of the package's own (model files, configuration files,
/// cached kernels), on swift-system's `FileDescriptor`, closed when released.
/// What swift-system leaves to its caller is here once: a read of exactly
/// `count` bytes (a file that ends early is an error), and every failure as
/// a `ModelFileError` that names the file and what was being done.
package final class OpenFile {
    let descriptor: FileDescriptor
    let path: String

    /// Opens `path` for reading.
    package init(reading path: String) throws(ModelFileError) {
        self.path = path
        descriptor = try Self.attempt(path, "open") {
            try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        }
    }

    /// Creates or truncates `path` for writing.
    package init(writing path: String) throws(ModelFileError) {
        self.path = path
        descriptor = try Self.attempt(path, "create") {
            try FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .truncate, .closeOnExec],
                                    permissions: [.ownerReadWrite, .groupRead, .otherRead])
        }
    }

    deinit { try? descriptor.close() }

    /// The file's size in bytes.
    func size() throws(ModelFileError) -> Int {
        Int(try Self.attempt(path, "stat") { try descriptor.stat().size })
    }

    /// Reads exactly `count` bytes at `offset` into `buffer`.
    func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: Int) throws(ModelFileError) {
        var done = 0
        while done < count {
            let n = try Self.attempt(path, "read") {
                try descriptor.read(fromAbsoluteOffset: Int64(offset + done),
                                    into: UnsafeMutableRawBufferPointer(start: buffer + done, count: count - done))
            }
            guard n > 0 else { throw .io(path: path, operation: "read", reason: "the file ended early") }
            done += n
        }
    }

    /// The whole file at `path`: the one routine that reads a file whole
    /// (configuration files, token files, cached kernels).
    /// - Throws: `ModelFileError.io` naming the path and what failed.
    package static func readAll(path: String) throws(ModelFileError) -> [UInt8] {
        let file = try OpenFile(reading: path)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = try attempt(path, "read") { try chunk.withUnsafeMutableBytes { try file.descriptor.read(into: $0) } }
            if n == 0 { return bytes }
            bytes += chunk[..<n]
        }
    }

    /// Appends exactly `count` bytes from `buffer`.
    package func write(_ buffer: UnsafeRawPointer, count: Int) throws(ModelFileError) {
        _ = try Self.attempt(path, "write") {
            try descriptor.writeAll(UnsafeRawBufferPointer(start: buffer, count: count))
        }
    }

    /// Flushes the file to its device (swift-system has no fsync).
    package func sync() throws(ModelFileError) {
        guard fsync(descriptor.rawValue) == 0 else { throw .io(path: path, operation: "sync", reason: Self.lastError()) }
    }

    /// `body`'s result, or its `Errno` as a `ModelFileError` naming the file and `operation`.
    private static func attempt<T>(_ path: String, _ operation: String, _ body: () throws -> T) throws(ModelFileError) -> T {
        do {
            return try body()
        } catch let error as Errno {
            throw .io(path: path, operation: operation, reason: error.description)
        } catch {
            throw .io(path: path, operation: operation, reason: "\(error)")
        }
    }

    /// The last system call's error, in words.
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
                throw .io(path: prefix, operation: "create the folder", reason: OpenFile.lastError())
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
