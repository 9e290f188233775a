import HPSMapped
import Glibc
import HPS
import HPSDemo

/// Measures how soon the mapped tier serves a sparse model folder: on the
/// first open (the index is built) and on a restart (the index is mapped),
/// to set beside the time to load the same folder into the hash map
/// (`LoadBenchmark.load`).
package enum MappedBenchmark {
    /// Seconds from nothing to ready to serve on a restart: opening the folder,
    /// attaching it in a fresh store with its existing index, and answering
    /// one lookup. An index is built first (not timed) if the folder has none.
    /// - Parameter folder: a sparse model folder (`key`, `emb_vector`).
    package static func restart(folder path: String) throws -> Double {
        _ = try MappedStore().attachTable("hps_et.bench.mapped", folders: [try open(path)])
        let start = ContinuousClock.now
        let table = try MappedStore().attachTable("hps_et.bench.mapped", folders: [try open(path)])
        serveOne(table)
        let seconds = (ContinuousClock.now - start).seconds
        guard table.rebuiltIndexes == [false] else {
            throw MappedError.io(path: table.indexPaths[0], operation: "reuse the index", reason: "it was rebuilt on the second attach")
        }
        return seconds
    }

    /// Seconds from nothing to ready to serve on a first open: the folder's
    /// index is removed, then built by attaching, and one lookup answered.
    package static func firstOpen(folder path: String) throws -> Double {
        let folder = try open(path)
        unlink(folder.path + "/hps_index")
        let start = ContinuousClock.now
        let table = try MappedStore().attachTable("hps_et.bench.mapped", folders: [try open(path)])
        serveOne(table)
        return (ContinuousClock.now - start).seconds
    }

    private static func open(_ path: String) throws -> SparseModelFolder {
        try SparseModelFolder(path: path, table: "bench", vecSize: nil)
    }

    /// Looks up the folder's first key, so that "ready" includes a served answer.
    private static func serveOne(_ table: MappedTable) {
        guard let member = table.members.first, let keyBase = member.keys.base else { return }
        var key = keyBase.load(as: Int64.self)
        var output = [Float](repeating: 0, count: table.vecSize)
        output.withUnsafeMutableBufferPointer { out in
            withUnsafePointer(to: &key) { k in
                var run = LookupRun(member: 0, keys: k, count: 1, output: out.baseAddress!)
                _ = withUnsafePointer(to: &run) { table.lookup(UnsafeBufferPointer(start: $0, count: 1), defaults: nil, missed: nil, parallelism: 1) }
            }
        }
    }
}
