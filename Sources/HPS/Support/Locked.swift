import Glibc

/// A value behind a pthread mutex: the lock of this package.
///
/// Why not the standard library's `Synchronization.Mutex`: on Linux it hands a
/// contended lock from one thread to the next through a priority-inheritance
/// futex inside the uninstrumented `libswiftSynchronization.so`, where
/// ThreadSanitizer cannot see the hand-off, so every contended section it
/// guards was reported as a data race (`docs/checks.md`). glibc's mutex is
/// one ThreadSanitizer intercepts, and its uncontended path is as cheap.
///
/// Thread safety: `withLock` may be called from any thread; the lock is not
/// recursive (a `withLock` inside another on the same lock deadlocks).
package final class Locked<Value: ~Copyable>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    /// A lock holding `value`.
    package init(_ value: consuming Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` on the value, holding the lock.
    @inline(__always)
    package func withLock<Result: ~Copyable, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
