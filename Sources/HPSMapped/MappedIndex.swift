import Glibc
import HPS
import Synchronization

/// The index kept beside a sparse model folder, `<folder>/hps_index`: a
/// header, then an open-addressing table of `capacity` slots (a power of two,
/// at least twice the rows), each 16 bytes: the key (Int64) and its row + 1
/// (UInt64; 0 marks an empty slot). Linear probing from `MappedIndex.hash`.
/// A key repeated in the folder points at its last row, as loading does.
///
/// Header (128 bytes, native byte order):
/// ```
///   0  magic "HPSMIDX1"       8  version (UInt32), 0 (UInt32)
///  16  rows (UInt64)         24  distinct keys (UInt64)
///  32  vec size (UInt64)     40  capacity (UInt64)
///  48  key file: size, mtime seconds, mtime nanoseconds (3 × 8)
///  72  emb_vector file: size, mtime seconds, mtime nanoseconds (3 × 8)
///  96  flags (UInt64): bit 0 set when every key fits 32-bit keys
/// 104  reserved (24 bytes, 0)
/// ```
/// The index is written to a temporary file, synced, and renamed into place,
/// so a reader sees either a whole index or none. An index whose header does
/// not match the folder's files (another magic, version, size, mtime, or a
/// truncated file) is rebuilt.
struct MappedIndexHeader: Equatable {
    static let magic: UInt64 = 0x3158_4449_4D53_5048  // "HPSMIDX1" read little-endian
    static let version: UInt32 = 1
    static let size = 128
    static let slotBytes = 16

    var rows: UInt64
    var distinct: UInt64
    var vecSize: UInt64
    var capacity: UInt64
    var keyFile: FileStamp
    var vectorFile: FileStamp
    /// Whether every key fits `KeyType.int32`, so a 32-bit deployment can reuse the index without a scan.
    var keysFit32: Bool

    func write(to raw: UnsafeMutableRawPointer) {
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: Self.size)
        let words: [UInt64] = [0, UInt64(Self.version), rows, distinct, vecSize, capacity,
                               keyFile.size, UInt64(bitPattern: keyFile.seconds), UInt64(bitPattern: keyFile.nanoseconds),
                               vectorFile.size, UInt64(bitPattern: vectorFile.seconds), UInt64(bitPattern: vectorFile.nanoseconds),
                               keysFit32 ? 1 : 0]
        for (i, word) in words.enumerated() { raw.storeBytes(of: word, toByteOffset: 8 * i, as: UInt64.self) }
        // The magic goes last, so a partly written header never reads as valid.
        raw.storeBytes(of: Self.magic, as: UInt64.self)
    }

    /// The header at `raw`, or nil if it lacks the magic or version.
    static func read(from raw: UnsafeRawPointer, length: Int) -> MappedIndexHeader? {
        guard length >= size else { return nil }
        func word(_ i: Int) -> UInt64 { raw.load(fromByteOffset: 8 * i, as: UInt64.self) }
        guard word(0) == magic, word(1) == UInt64(version) else { return nil }
        return MappedIndexHeader(rows: word(2), distinct: word(3), vecSize: word(4), capacity: word(5),
                                 keyFile: FileStamp(size: word(6), seconds: Int64(bitPattern: word(7)), nanoseconds: Int64(bitPattern: word(8))),
                                 vectorFile: FileStamp(size: word(9), seconds: Int64(bitPattern: word(10)), nanoseconds: Int64(bitPattern: word(11))),
                                 keysFit32: word(12) & 1 != 0)
    }
}

/// One member table served from its folder: the mapped key, vector and index files.
package final class MappedMember: @unchecked Sendable {
    let folder: SparseModelFolder
    package let keys: MappedFile
    let vectors: MappedFile
    let index: MappedFile
    let rows: Int
    let distinct: Int
    let vecSize: Int
    /// Slot mask (capacity − 1).
    let mask: Int
    /// Whether attaching built the index (false: an existing index was reused).
    let rebuilt: Bool

    /// The index file in use.
    let indexPath: String
    /// Set when a file of the member was found written in place (`checkFiles`).
    private let modified = Atomic<Bool>(false)
    /// Set when the damage has been described (`takeDamage`), so it is once.
    private let described = Atomic<Bool>(false)
    /// Set when a replaced or removed file has been described, so it is once.
    private let describedReplacement = Atomic<Bool>(false)

    /// Whether the member's files changed under it: one shrank (a read past
    /// its end faulted) or was written in place. Its keys are then answered
    /// from the tiers below: a lookup checks this after copying its rows, so a
    /// row copied from a file being changed is never served.
    var isDamaged: Bool {
        (keys.faults | vectors.faults | index.faults) != 0 || modified.load(ordering: .acquiring)
    }

    /// The sentence describing the damage, the first time it is asked for
    /// after `isDamaged` became true; nil before and after.
    func takeDamage(table: String) -> String? {
        guard isDamaged, !described.exchange(true, ordering: .relaxed) else { return nil }
        let file = [keys, vectors, index].first { $0.faults != 0 }
        let what = file.map { "\($0.path) shrank while it was served (a read past its end)" }
            ?? "a file of \(folder.path) was written in place while it was served"
        return "table \(table): \(what); its keys are answered from the tiers below until the model is reloaded (replace model files by renaming new ones over them)"
    }

    /// Compares the member's files with those mapped: marks the member
    /// damaged if one was written in place. Returns a sentence the first
    /// time it finds one written, replaced or removed.
    func checkFiles(table: String) -> String? {
        var replacement: String? = nil
        for file in [keys, vectors, index] {
            switch file.change() {
            case nil:
                continue
            case .modified?:
                modified.store(true, ordering: .releasing)
                return takeDamage(table: table)
            case let change?:
                let how = change == .replaced ? "was replaced" : "was removed"
                replacement = replacement ?? "table \(table): \(file.path) \(how) while it was served; the mapped tier serves the files it mapped until the model is reloaded"
            }
        }
        guard let replacement, !describedReplacement.exchange(true, ordering: .relaxed) else { return nil }
        return replacement
    }

    /// The index beside a folder's files.
    static func besidePath(_ folder: SparseModelFolder) -> String { folder.path + "/hps_index" }

    /// The index of a folder kept in `indexFolder` instead: named by the
    /// folder's last component and a hash (FNV-1a) of its absolute path.
    static func fallbackPath(_ folder: SparseModelFolder, in indexFolder: String) -> String {
        var absolute = folder.path
        if let resolved = realpath(folder.path, nil) {
            absolute = String(cString: resolved)
            free(resolved)
        }
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in absolute.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        let name = absolute.split(separator: "/").last.map(String.init) ?? "root"
        let hex = String(hash, radix: 16)
        return indexFolder + "/" + name + "-" + String(repeating: "0", count: 16 - hex.count) + hex + ".hps_index"
    }

    /// Maps a folder's files and its index, building the index if none matches.
    /// - Parameter indexFolder: where to keep the index when the folder itself
    ///   cannot hold one (it is read-only); nil to require the folder.
    init(folder: SparseModelFolder, keyType: KeyType, indexFolder: String? = nil) throws(MappedError) {
        self.folder = folder
        let keyStamp = try FileStamp(path: folder.keyPath), vectorStamp = try FileStamp(path: folder.vectorPath)
        keys = try MappedFile(readOnly: folder.keyPath)
        vectors = try MappedFile(readOnly: folder.vectorPath)
        rows = keys.length / 8
        vecSize = folder.vecSize
        let candidates = [Self.besidePath(folder)] + (indexFolder.map { [Self.fallbackPath(folder, in: $0)] } ?? [])
        var existing: (MappedFile, MappedIndexHeader, String)? = nil
        for path in candidates {
            if let (file, header) = Self.matchingIndex(path, rows: rows, vecSize: vecSize, keyStamp: keyStamp, vectorStamp: vectorStamp) {
                existing = (file, header, path)
                break
            }
        }
        if let (file, header, path) = existing {
            if keyType == .int32 && !header.keysFit32 {
                // Some key does not fit: find it, for the error.
                try Self.checkKeys(keys, rows: rows, keyType: keyType, path: folder.keyPath)
            }
            index = file
            indexPath = path
            distinct = Int(header.distinct)
            mask = Int(header.capacity) - 1
            rebuilt = false
        } else {
            var built: (MappedIndexHeader, String)? = nil
            var failure: MappedError? = nil
            for path in candidates {
                do {
                    if path != candidates[0], let indexFolder { try Self.makeFolder(indexFolder) }
                    built = (try Self.build(folder: folder, keys: keys, rows: rows, keyType: keyType, path: path,
                                            keyStamp: keyStamp, vectorStamp: vectorStamp), path)
                    break
                } catch {
                    if case .io = error { failure = failure ?? error; continue }
                    throw error
                }
            }
            guard let (header, path) = built else { throw failure! }
            index = try MappedFile(readOnly: path)
            indexPath = path
            distinct = Int(header.distinct)
            mask = Int(header.capacity) - 1
            rebuilt = true
        }
        // After a restart with a cold page cache every probe would be a read
        // from disk: have the index read in, in the background. (MADV_RANDOM on
        // the vectors made the first 10 000 cold lookups of a 10M × 128 table
        // 3.6× faster, but warm lookups 2× slower, as each page then faults
        // alone; a restart usually finds the files in the page cache.)
        index.advise(MADV_WILLNEED)
    }

    /// The index at `path` if it exists and matches the files.
    static func matchingIndex(_ path: String, rows: Int, vecSize: Int, keyStamp: FileStamp,
                              vectorStamp: FileStamp) -> (MappedFile, MappedIndexHeader)? {
        guard access(path, F_OK) == 0, let file = try? MappedFile(readOnly: path), let base = file.base,
              let header = MappedIndexHeader.read(from: base, length: file.length),
              header.rows == UInt64(rows), header.vecSize == UInt64(vecSize),
              header.keyFile == keyStamp, header.vectorFile == vectorStamp,
              header.capacity > 0, header.capacity & (header.capacity - 1) == 0,
              header.capacity >= 2 * header.rows,
              UInt64(file.length) == UInt64(MappedIndexHeader.size) + header.capacity * UInt64(MappedIndexHeader.slotBytes)
        else { return nil }
        return (file, header)
    }

    /// Creates a folder and its parents.
    static func makeFolder(_ path: String) throws(MappedError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw .io(path: prefix, operation: "create the index folder", reason: MappedError.lastError())
            }
        }
    }

    /// The slot of a key's hash (murmur3's 64-bit finalizer).
    @inline(__always)
    static func hash(_ key: Int64) -> Int {
        var h = UInt64(bitPattern: key)
        h ^= h >> 33
        h &*= 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h &*= 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return Int(truncatingIfNeeded: h)
    }

    static func checkKeys(_ keys: MappedFile, rows: Int, keyType: KeyType, path: String) throws(MappedError) {
        guard keyType == .int32, let base = keys.base else { return }
        let k = base.assumingMemoryBound(to: Int64.self)
        for i in 0..<rows where !keyType.admits(k[i]) { throw .keyOutOfRange(path: path, key: k[i], index: i) }
    }

    /// Builds the index into a temporary file beside it and renames it into place.
    static func build(folder: SparseModelFolder, keys: MappedFile, rows: Int, keyType: KeyType, path: String,
                      keyStamp: FileStamp, vectorStamp: FileStamp) throws(MappedError) -> MappedIndexHeader {
        try checkKeys(keys, rows: rows, keyType: keyType, path: folder.keyPath)
        var capacity = 16
        while capacity < 2 * rows { capacity <<= 1 }
        let length = MappedIndexHeader.size + capacity * MappedIndexHeader.slotBytes
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io(path: temporary, operation: "create", reason: MappedError.lastError()) }
        defer { close(fd) }
        guard ftruncate(fd, off_t(length)) == 0 else {
            let reason = MappedError.lastError()
            unlink(temporary)
            throw .io(path: temporary, operation: "size", reason: reason)
        }
        guard let address = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), address != MAP_FAILED else {
            let reason = MappedError.lastError()
            unlink(temporary)
            throw .io(path: temporary, operation: "map", reason: reason)
        }
        // The file is fresh from ftruncate, so every slot reads as empty.
        let slots = (address + MappedIndexHeader.size).bindMemory(to: Int64.self, capacity: capacity * 2)
        let mask = capacity - 1
        var distinct = 0
        var fit32 = true
        if let keyBase = keys.base {
            let k = keyBase.assumingMemoryBound(to: Int64.self)
            for row in 0..<rows {
                let key = k[row]
                if key < 0 || key > Int64(UInt32.max) { fit32 = false }
                var slot = hash(key) & mask
                while true {
                    let stored = slots[2 &* slot &+ 1]
                    if stored == 0 {
                        slots[2 &* slot] = key
                        slots[2 &* slot &+ 1] = Int64(row &+ 1)
                        distinct &+= 1
                        break
                    }
                    if slots[2 &* slot] == key {
                        slots[2 &* slot &+ 1] = Int64(row &+ 1)  // the last row wins
                        break
                    }
                    slot = (slot &+ 1) & mask
                }
            }
        }
        let header = MappedIndexHeader(rows: UInt64(rows), distinct: UInt64(distinct), vecSize: UInt64(folder.vecSize),
                                       capacity: UInt64(capacity), keyFile: keyStamp, vectorFile: vectorStamp,
                                       keysFit32: fit32)
        header.write(to: address)
        munmap(address, length)
        guard fsync(fd) == 0 else {
            let reason = MappedError.lastError()
            unlink(temporary)
            throw .io(path: temporary, operation: "sync", reason: reason)
        }
        guard rename(temporary, path) == 0 else {
            let reason = MappedError.lastError()
            unlink(temporary)
            throw .io(path: path, operation: "rename \(temporary) to", reason: reason)
        }
        return header
    }

    /// The vector of `key`, or nil.
    @inline(__always)
    func find(_ key: Int64) -> UnsafeRawPointer? {
        guard let indexBase = index.base, let vectorBase = vectors.base, let keyBase = keys.base else { return nil }
        let slots = UnsafeRawPointer(indexBase + MappedIndexHeader.size).assumingMemoryBound(to: Int64.self)
        let rowKeys = UnsafeRawPointer(keyBase).assumingMemoryBound(to: Int64.self)
        var slot = Self.hash(key) & mask
        // A damaged index may have no empty slot; never probe more than all of them.
        var probes = 0
        while probes <= mask {
            probes &+= 1
            let stored = slots[2 &* slot &+ 1]
            if stored == 0 { return nil }
            if slots[2 &* slot] == key {
                let row = Int(truncatingIfNeeded: stored) &- 1
                // A damaged index cannot send a read outside the vector file, nor
                // answer with another key's row: the row's key in the key file must
                // be the key (a load that runs beside the vector row's).
                guard row >= 0 && row < rows, rowKeys[row] == key else { return nil }
                return UnsafeRawPointer(vectorBase + row &* vecSize &* 4)
            }
            slot = (slot &+ 1) & mask
        }
        return nil
    }

    /// The home slot of `key`, for prefetching.
    @inline(__always)
    func homeSlot(_ key: Int64) -> UnsafeRawPointer? {
        guard let indexBase = index.base else { return nil }
        return UnsafeRawPointer(indexBase + MappedIndexHeader.size + (Self.hash(key) & mask) &* MappedIndexHeader.slotBytes)
    }
}
