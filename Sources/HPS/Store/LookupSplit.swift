import Dispatch

/// Splits one batched lookup across threads: the flat key range (counting
/// across runs in order) is cut into contiguous pieces, one thread each, and
/// the pieces' misses are compacted afterwards so that `missed` stays
/// ascending, as `EmbeddingStoreTable.lookup` promises. Every store that can
/// use several threads for one lookup goes through here.
package enum LookupSplit {
    /// Runs `body` over pieces of at least `minimumPerPiece` keys, on up to
    /// `parallelism` threads (inline when that is one piece).
    ///
    /// - Parameter body: `(run, offset, count, flatStart, missed)`: look up
    ///   `count` keys starting at key `offset` of run `run` (flat index
    ///   `flatStart`), write the flat indices of misses at `missed` (which has
    ///   room for `count`), and return how many missed. Pieces never overlap,
    ///   so `body` may run concurrently with itself.
    /// - Returns: the misses of all pieces, whose indices are now at the start of `missed`.
    package static func run(_ runs: UnsafeBufferPointer<LookupRun>, parallelism: Int, minimumPerPiece: Int,
                           missed: UnsafeMutablePointer<Int>?,
                           _ body: (_ run: Int, _ offset: Int, _ count: Int, _ flatStart: Int,
                                    _ missed: UnsafeMutablePointer<Int>?) -> Int) -> Int {
        var total = 0
        for run in runs { total += run.count }
        guard total > 0 else { return 0 }
        let pieces = min(max(1, parallelism), total / max(1, minimumPerPiece))
        if pieces <= 1 { return body(0, 0, total, 0, missed) }
        var starts = [Int](repeating: 0, count: runs.count + 1)
        for (i, run) in runs.enumerated() { starts[i + 1] = starts[i] + run.count }
        let size = (total + pieces - 1) / pieces
        let misses = UnsafeMutableBufferPointer<Int>.allocate(capacity: pieces)
        misses.initialize(repeating: 0)
        defer { misses.deallocate() }
        let shared = UncheckedSendable((starts: starts, misses: misses, missed: missed, total: total))
        withoutActuallyEscaping(body) { body in
            let work = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: pieces) { piece in
                let (starts, misses, missed, total) = shared.value
                let start = piece * size, end = min(total, start + size)
                guard start < end else { return }
                // The run holding `start`.
                var lo = 0, hi = starts.count - 2
                while lo < hi {
                    let mid = (lo + hi + 1) / 2
                    if starts[mid] <= start { lo = mid } else { hi = mid - 1 }
                }
                misses[piece] = work.value(lo, start - starts[lo], end - start, start, missed.map { $0 + start })
            }
        }
        // Each piece wrote its misses at its own start; close the gaps, keeping them ascending.
        var missCount = 0
        for piece in 0..<pieces {
            if let missed, missCount != piece * size, misses[piece] > 0 {
                (missed + missCount).update(from: missed + piece * size, count: misses[piece])
            }
            missCount += misses[piece]
        }
        return missCount
    }
}
