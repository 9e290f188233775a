import CHPSSupport
import Glibc

/// Zeroed memory for a store's arrays. Regions of 1 MiB and more are mapped
/// directly and marked for transparent huge pages, because random lookups in
/// a multi-gigabyte arena otherwise spend much of their time on TLB misses;
/// smaller ones come from malloc so that many small tables stay cheap.
///
/// Callers pass the same byte count to `reallocate` and `release` that they
/// allocated with.
package enum LargeAllocation {
    static let mapThreshold = 1 << 20
    static let hugePage = 2 << 20

    /// `bytes` zeroed bytes.
    package static func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        let bytes = max(bytes, 16)
        if bytes < mapThreshold {
            guard let p = calloc(1, bytes) else { fatalError("out of memory allocating \(bytes) bytes") }
            return p
        }
        let length = roundUp(bytes)
        let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let p, p != MAP_FAILED else { fatalError("out of memory mapping \(length) bytes") }
        _ = madvise(p, length, MADV_HUGEPAGE)
        return p
    }

    /// Grows or shrinks a region, keeping its contents; new bytes are zero.
    static func reallocate(_ p: UnsafeMutableRawPointer, from old: Int, to new: Int) -> UnsafeMutableRawPointer {
        let old = max(old, 16), new = max(new, 16)
        if old >= mapThreshold && new >= mapThreshold {
            let q = hps_mremap_maymove(p, roundUp(old), roundUp(new))
            guard let q, q != MAP_FAILED else { fatalError("out of memory remapping to \(new) bytes") }
            _ = madvise(q, roundUp(new), MADV_HUGEPAGE)
            return q
        }
        let q = allocate(bytes: new)
        q.copyMemory(from: p, byteCount: min(old, new))
        release(p, bytes: old)
        return q
    }

    /// Returns the whole pages of a region past its first `used` bytes to the
    /// system; they read as zero when next touched. Why: a mapped region is
    /// in transparent huge pages, and the huge page under its last used bytes
    /// otherwise keeps up to 2 MiB resident that nothing uses, in every
    /// partition of every table.
    static func releaseTail(_ p: UnsafeMutableRawPointer, used: Int, of bytes: Int) {
        guard max(bytes, 16) >= mapThreshold else { return }
        let start = roundUp(used), end = roundUp(bytes)
        if end > start { _ = madvise(p + start, end - start, MADV_DONTNEED) }
    }

    /// Returns a region.
    package static func release(_ p: UnsafeMutableRawPointer, bytes: Int) {
        let bytes = max(bytes, 16)
        if bytes < mapThreshold { free(p) } else { munmap(p, roundUp(bytes)) }
    }

    /// Runs `body` with a scratch buffer of `count` elements that is returned
    /// to the system afterwards, so that a large batch leaves no resident heap behind.
    static func withScratch<T, R, E: Error>(_: T.Type, count: Int,
                                            _ body: (UnsafeMutableBufferPointer<T>) throws(E) -> R) throws(E) -> R {
        let bytes = max(1, count) * MemoryLayout<T>.stride
        let raw = allocate(bytes: bytes)
        defer { release(raw, bytes: bytes) }
        return try body(UnsafeMutableBufferPointer(start: raw.bindMemory(to: T.self, capacity: max(1, count)), count: count))
    }

    private static func roundUp(_ bytes: Int) -> Int {
        let page = 4096
        return (bytes + page - 1) / page * page
    }
}
