/// Reads configuration files (through `OpenFile`, so the module needs no Foundation).
enum ConfigurationFile {
    /// The whole file as UTF-8 text.
    static func text(atPath path: String) throws(ConfigurationError) -> String {
        let bytes: [UInt8]
        do throws(ModelFileError) {
            bytes = try OpenFile.readAll(path: path)
        } catch {
            guard case let .io(_, _, reason) = error else { throw .unreadableFile(path: path, reason: "\(error)") }
            throw .unreadableFile(path: path, reason: reason)
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .unreadableFile(path: path, reason: "the file is not UTF-8 text")
        }
        return text
    }

    /// The folder part of `path` as written: `.` for a bare name, `/` for a file in the root.
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let directory = path[..<slash]
        return directory.isEmpty ? "/" : String(directory)
    }
}
