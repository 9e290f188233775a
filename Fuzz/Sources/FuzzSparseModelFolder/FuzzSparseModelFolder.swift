import FuzzSupport
import Glibc
@testable import HPS
@testable import HPSMapped

/// The sparse model folder reader (`SparseModelFolder`: the `key` and
/// `emb_vector` files' sizes and contents) and the memory-mapped tier that
/// serves straight from them (`MappedStore`, with the index it keeps beside
/// the files), on arbitrary files.
///
/// The input is laid out as
///
///     byte 0      vec size: 0 lets the reader infer it, n > 0 configures n mod 9
///     byte 1      bit 0: 32-bit keys; bit 1: damage the index (below)
///     bytes 2–3   the key file's length (little-endian, at most what follows)
///     then        the key file, then the vector file; with bit 1, the input's
///                 last quarter instead XORs the built index's slots
///
/// Checks: the folder is accepted exactly when its files agree (whole keys,
/// whole vectors of the configured size); what `readAll` returns is the files'
/// bytes; 32-bit keys are refused exactly when a key does not fit; the mapped
/// tier answers every key of the folder with its last row and misses keys
/// not in it. After the index is damaged (its header still matching the
/// files) a key is answered with a row of that key or missed, never with
/// another key's row, and nothing is read outside the files.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSparseModelFolder(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = input(data, size)
    guard bytes.count >= 4 else { return 0 }
    let configured: Int? = bytes[0] == 0 ? nil : Int(bytes[0] % 9)
    let keyType: KeyType = bytes[1] & 1 != 0 ? .int32 : .int64
    let damage = bytes[1] & 2 != 0
    var rest = UnsafeRawBufferPointer(rebasing: bytes[4...])
    var patch = UnsafeRawBufferPointer(start: nil, count: 0)
    if damage {
        let split = rest.count - rest.count / 4
        patch = UnsafeRawBufferPointer(rebasing: rest[split...])
        rest = UnsafeRawBufferPointer(rebasing: rest[..<split])
    }
    let keyLength = min(Int(bytes[2]) | Int(bytes[3]) << 8, rest.count)
    let keyFile = UnsafeRawBufferPointer(rebasing: rest[..<keyLength])
    let vectorFile = UnsafeRawBufferPointer(rebasing: rest[keyLength...])

    let folder = Scratch.folder
    write(keyFile, to: folder + "/key")
    write(vectorFile, to: folder + "/emb_vector")
    unlink(folder + "/hps_index")

    let model: SparseModelFolder
    do {
        model = try SparseModelFolder(path: folder, table: "fuzz", vecSize: configured)
    } catch {
        check(!agree(keyBytes: keyFile.count, vectorBytes: vectorFile.count, configured: configured),
              "files of \(keyFile.count) and \(vectorFile.count) bytes (vec size \(String(describing: configured))) refused: \(error)")
        return 0
    }
    check(agree(keyBytes: keyFile.count, vectorBytes: vectorFile.count, configured: configured),
          "files of \(keyFile.count) and \(vectorFile.count) bytes (vec size \(String(describing: configured))) accepted")
    let rows = keyFile.count / 8
    let vecSize = model.vecSize
    check(model.keyCount == rows && vectorFile.count == rows * vecSize * 4, "the folder's counts disagree with its files")
    let keys = (0..<rows).map { keyFile.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self) }
    let vectors = (0..<(rows * vecSize)).map { vectorFile.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
    let fits = keys.allSatisfy { keyType.admits($0) }
    do {
        let read = try model.readAll(keyType: keyType)
        check(fits, "a key that \(keyType) does not admit was read")
        check(read.keys == keys, "readAll's keys are not the key file's")
        check(bitwiseEqual(read.vectors, vectors), "readAll's vectors are not the vector file's")
    } catch {
        check(!fits, "readAll refused keys that fit \(keyType): \(error)")
    }

    // The mapped tier.
    var lastRow: [Int64: Int] = [:]
    for (row, key) in keys.enumerated() { lastRow[key] = row }
    let asked = keys + keys.map { $0 &+ 1 } + [0, -1, .max, .min]
    let store = MappedStore()
    do {
        let table = try store.attachTable("fuzz", folders: [model], keyType: keyType)
        let answers = lookup(table, keys: asked)
        for (i, key) in asked.enumerated() {
            let answer = answers[i]
            if let row = lastRow[key] {
                check(answer.map { bitwiseEqual($0, vectors[(row * vecSize)..<((row + 1) * vecSize)]) } ?? false,
                      "key \(key) was not answered with its last row \(row)")
            } else {
                check(answer == nil, "key \(key), not in the folder, was answered")
            }
        }
        guard damage, !patch.isEmpty else { return 0 }
        store.dropTable("fuzz")
        damageIndex(folder + "/hps_index", with: patch)
        let damaged = try store.attachTable("fuzz", folders: [model], keyType: keyType)
        let after = lookup(damaged, keys: asked)
        for (i, key) in asked.enumerated() {
            guard let answer = after[i] else { continue }
            let rowsOfKey = keys.indices.filter { keys[$0] == key }
            check(rowsOfKey.contains { bitwiseEqual(answer, vectors[($0 * vecSize)..<(($0 + 1) * vecSize)]) },
                  "after the index was damaged, key \(key) was answered with a vector of none of its rows")
        }
    } catch {
        check(!fits, "the mapped tier refused a folder whose keys fit \(keyType): \(error)")
    }
    return 0
}

/// Whether key and vector files of these sizes form a folder.
private func agree(keyBytes: Int, vectorBytes: Int, configured: Int?) -> Bool {
    guard keyBytes % 8 == 0 else { return false }
    let rows = keyBytes / 8
    if let configured { return configured > 0 && vectorBytes == rows * configured * 4 }
    return rows > 0 && vectorBytes > 0 && vectorBytes % (rows * 4) == 0
}

/// Each key's vector, nil for a miss; the output starts as NaN so that an unwritten element shows.
private func lookup(_ table: MappedTable, keys: [Int64]) -> [[Float]?] {
    let vecSize = table.vecSize
    var output = [Float](repeating: .nan, count: keys.count * vecSize)
    var missed = [Int](repeating: -1, count: keys.count)
    let misses = keys.withUnsafeBufferPointer { k in
        output.withUnsafeMutableBufferPointer { out in
            missed.withUnsafeMutableBufferPointer { m in
                let runs = [LookupRun(member: 0, keys: k.baseAddress!, count: keys.count, output: out.baseAddress!)]
                return runs.withUnsafeBufferPointer { table.lookup($0, defaults: nil, missed: m.baseAddress, parallelism: 1) }
            }
        }
    }
    let missedSet = Set(missed[0..<misses])
    check(missedSet.count == misses, "a key was reported missed twice")
    return keys.indices.map { missedSet.contains($0) ? nil : Array(output[($0 * vecSize)..<(($0 + 1) * vecSize)]) }
}

private func bitwiseEqual<A: Collection<Float>, B: Collection<Float>>(_ a: A, _ b: B) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
}

/// XORs `patch` into the index's slots (after its 128-byte header), repeating it over them.
private func damageIndex(_ path: String, with patch: UnsafeRawBufferPointer) {
    let fd = open(path, O_RDWR)
    check(fd >= 0, "the index \(path) was not built")
    defer { close(fd) }
    var info = stat()
    fstat(fd, &info)
    let length = Int(info.st_size)
    guard length > 128, let map = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), map != MAP_FAILED else { return }
    defer { munmap(map, length) }
    for offset in 128..<length {
        map.storeBytes(of: map.load(fromByteOffset: offset, as: UInt8.self) ^ patch[(offset - 128) % patch.count],
                       toByteOffset: offset, as: UInt8.self)
    }
    // Keep the index's recorded stamps of the model files valid: only the slots changed.
}

private func write(_ bytes: UnsafeRawBufferPointer, to path: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    check(fd >= 0, "cannot write \(path)")
    defer { close(fd) }
    var done = 0
    while done < bytes.count {
        let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
        check(n > 0, "cannot write \(path)")
        done += n
    }
}

/// One folder per process, in /dev/shm when there is one (the files are rewritten for every input).
private enum Scratch {
    nonisolated(unsafe) static let folder: String = {
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
        let path = "\(base)/hps-fuzz-sparse-\(getpid())"
        mkdir(path, 0o755)
        return path
    }()
}
