import Dispatch
import Glibc

/// Splits `0..<count` into contiguous chunks and runs them on up to
/// `parallelism` threads; with a parallelism of 1, or too little work, runs
/// inline on the calling thread.
///
/// `body(range)` is called once per chunk; chunks never overlap.
@inline(__always)
package func parallelChunks(count: Int, parallelism: Int, minimumChunk: Int, _ body: (Range<Int>) -> Void) {
    let chunks = min(max(1, parallelism), max(1, count / max(1, minimumChunk)))
    if chunks <= 1 {
        body(0..<count)
        return
    }
    let size = (count + chunks - 1) / chunks
    // The chunks touch disjoint ranges, which the caller's raw buffers cannot
    // tell the compiler; the box states it once.
    withoutActuallyEscaping(body) { body in
        let box = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let start = chunk * size
            let end = min(count, start + size)
            if start < end { box.value(start..<end) }
        }
    }
}

/// A value handed to other threads whose safety the compiler cannot see
/// (disjoint ranges of one buffer, or state a lock guards).
package struct UncheckedSendable<Value>: @unchecked Sendable {
    /// The value.
    package let value: Value
    /// Wraps a value.
    package init(_ value: Value) { self.value = value }
}

/// The number of cores this process may use.
package var availableCores: Int {
    max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
}
