import CHPSSupport

/// Tunes the C allocator of a process that allocates buffers of tens of
/// megabytes per request (a server answering seed batches, a load generator
/// reading those answers): freed blocks of up to `bytes` stay in the heap and
/// are reused, instead of being unmapped and their pages faulted in again
/// for the next request (the largest cost in a profile of 27 MB answers).
/// Resident memory then stays at its high-water mark.
package enum LargeBufferReuse {
    /// Keeps freed blocks of up to `bytes` (default 128 MiB) in the heap.
    package static func enable(upTo bytes: Int = 128 << 20) {
        hps_keep_freed_blocks(Int32(clamping: bytes))
    }
}
