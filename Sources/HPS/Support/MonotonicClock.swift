import Glibc

/// Nanoseconds from CLOCK_MONOTONIC, for timing batches and benchmarks.
package enum MonotonicClock {
    /// The current monotonic time in nanoseconds.
    package static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
