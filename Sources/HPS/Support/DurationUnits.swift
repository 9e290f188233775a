/// A `Duration` (the difference of two `ContinuousClock` instants, the one
/// clock the package times with) in the units the counters and reports use.
extension Duration {
    /// Whole nanoseconds; a negative duration is 0.
    package var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
    }

    /// Microseconds, fractional.
    package var microseconds: Double { seconds * 1e6 }

    /// Seconds, fractional.
    package var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
