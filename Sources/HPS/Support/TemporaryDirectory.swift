import Glibc

/// A folder under the system's temporary folder, removed with its contents
/// when `remove()` is called.
package struct TemporaryDirectory: Sendable {
    /// The folder's path.
    package let path: String

    /// Creates a new, empty folder named after `prefix`.
    package init(prefix: String = "hps") throws(ModelFileError) {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(base)/\(prefix)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else {
            throw .io(path: base, operation: "create a temporary folder in", reason: OpenFile.lastError())
        }
        path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
    }

    /// Removes the folder and everything in it.
    package func remove() {
        removeTree(path)
    }
}

/// Removes a file, or a folder and everything in it.
func removeTree(_ path: String) {
    if isDirectory(path) {
        if let dir = opendir(path) {
            var names: [String] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
                }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(dir)
            for name in names { removeTree(joinPath(path, name)) }
        }
        rmdir(path)
    } else {
        unlink(path)
    }
}
