import Glibc
import HPS

/// The OS page cache of the files of a folder, for cold-start benchmarks:
/// how much of them is resident (`mincore`), and dropping them from it
/// (`fdatasync` then `posix_fadvise(POSIX_FADV_DONTNEED)` on each file), which
/// leaves the rest of the machine's cache alone, unlike
/// `/proc/sys/vm/drop_caches`. Pages that a process has mapped stay; the
/// benchmark drops them while no process has the files open.
enum PageCache {
    /// The regular files directly inside `folder`.
    static func files(_ folder: String) -> [String] {
        guard let directory = opendir(folder) else { return [] }
        defer { closedir(directory) }
        var paths: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if entry.pointee.d_type == UInt8(DT_REG) { paths.append(folder + "/" + name) }
        }
        return paths.sorted()
    }

    /// Bytes of the folder's files, and the bytes of them in the page cache.
    static func residency(_ folder: String) -> (bytes: Int, resident: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var bytes = 0, resident = 0
        for path in files(folder) {
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            let size = Int(lseek(fd, 0, SEEK_END))
            guard size > 0 else { continue }
            bytes += size
            guard let map = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else { continue }
            defer { munmap(map, size) }
            let pages = (size + page - 1) / page
            var vector = [UInt8](repeating: 0, count: pages)
            guard mincore(map, size, &vector) == 0 else { continue }
            resident += vector.reduce(0) { $0 + Int($1 & 1) } * page
        }
        return (bytes, min(resident, bytes))
    }

    /// Reads a model folder's two files once so that the next read comes from the page cache.
    static func warm(_ folder: String) throws {
        for name in ["key", "emb_vector"] {
            _ = try OpenFile.readAll(path: "\(folder)/\(name)")
        }
    }

    /// Writes back and drops the folder's files from the page cache.
    static func drop(_ folder: String) {
        for path in files(folder) {
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else { continue }
            fdatasync(fd)
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
            close(fd)
        }
    }
}
