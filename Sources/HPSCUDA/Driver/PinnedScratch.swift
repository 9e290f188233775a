/// Named page-locked host buffers kept between calls and grown when a call
/// needs more, so that a request's copies to and from the device are true
/// asynchronous DMA (the driver stages pageable memory through a buffer of
/// its own, one blocking chunk at a time) and allocate nothing once large enough.
///
/// Thread safety: none; the owner serializes its calls, and waits for the
/// copies that still read or write a buffer before touching it again.
final class PinnedScratch {
    private let device: CUDADevice
    private var buffers: [String: PinnedBuffer<UInt8>] = [:]

    init(device: CUDADevice) {
        self.device = device
    }

    /// The buffer `name`, at least `bytes` long (64 KiB at least; grown to
    /// the next power of two, since allocating pinned memory is slow).
    func buffer(_ name: String, bytes: Int) throws(CUDAError) -> UnsafeMutableRawPointer {
        if let buffer = buffers[name], buffer.count >= bytes { return UnsafeMutableRawPointer(buffer.pointer) }
        var size = 1 << 16
        while size < bytes { size <<= 1 }
        // The old buffer goes first: a caller asks only between its copies.
        buffers[name] = nil
        let buffer = try PinnedBuffer<UInt8>(device: device, count: size)
        buffers[name] = buffer
        return UnsafeMutableRawPointer(buffer.pointer)
    }
}
