import Glibc

/// A pthread reader-writer lock that prefers writers, so that a stream of
/// batched lookups cannot starve an insert.
///
/// Thread safety: every method may be called from any thread. A writer must
/// hold at most one of these locks at a time; readers may hold several, taken
/// in a fixed order (the partitions of a table, in index order).
package final class ReadWriteLock: @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    /// Creates an unlocked lock.
    package init() {
        lock = .allocate(capacity: 1)
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        pthread_rwlock_init(lock, &attributes)
        pthread_rwlockattr_destroy(&attributes)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    /// Takes the lock shared.
    @inline(__always) public func lockRead() { pthread_rwlock_rdlock(lock) }
    /// Takes the lock exclusively.
    @inline(__always) public func lockWrite() { pthread_rwlock_wrlock(lock) }
    /// Releases the lock, shared or exclusive.
    @inline(__always) public func unlock() { pthread_rwlock_unlock(lock) }

    /// Runs `body` holding the lock shared.
    @inline(__always)
    package func withReadLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lockRead()
        defer { unlock() }
        return try body()
    }

    /// Runs `body` holding the lock exclusively.
    @inline(__always)
    package func withWriteLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lockWrite()
        defer { unlock() }
        return try body()
    }
}
