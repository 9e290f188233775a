public import HPS

/// A CUDA stream, destroyed when released.
public final class CUDAStream: @unchecked Sendable {
    package let handle: OpaquePointer?
    package let device: CUDADevice

    /// Creates a non-blocking stream.
    public init(device: CUDADevice) throws(CUDAError) {
        self.device = device
        var handle: OpaquePointer? = nil
        try device.driver.check(device.driver.cuStreamCreate(&handle, 1), "cuStreamCreate")
        self.handle = handle
    }

    deinit { _ = device.driver.cuStreamDestroy(handle) }

    /// Waits for the stream's work.
    public func synchronize() throws(CUDAError) {
        try device.driver.check(device.driver.cuStreamSynchronize(handle), "cuStreamSynchronize")
    }

    /// Makes the stream's later work wait for `event` (recorded on another
    /// stream), without the host waiting.
    public func wait(for event: CUDAEvent) throws(CUDAError) {
        try device.driver.check(device.driver.cuStreamWaitEvent(handle, event.handle, 0), "cuStreamWaitEvent")
    }

    /// Copies `bytes` from host to device, in order on this stream.
    public func copy(to target: UInt64, from source: UnsafeRawPointer, bytes: Int) throws(CUDAError) {
        try device.driver.check(device.driver.cuMemcpyHtoDAsync(target, source, bytes, handle), "cuMemcpyHtoDAsync")
    }

    /// Copies `bytes` from device to host, in order on this stream.
    public func copy(to target: UnsafeMutableRawPointer, from source: UInt64, bytes: Int) throws(CUDAError) {
        try device.driver.check(device.driver.cuMemcpyDtoHAsync(target, source, bytes, handle), "cuMemcpyDtoHAsync")
    }

    /// Copies an array to the device. From pageable memory the driver stages
    /// the bytes before returning, so the array may go right after.
    public func upload<T>(_ values: [T], to target: UInt64) throws(CUDAError) {
        let result = values.withUnsafeBytes { device.driver.cuMemcpyHtoDAsync(target, $0.baseAddress, $0.count, handle) }
        try device.driver.check(result, "cuMemcpyHtoDAsync")
    }

    /// Copies `values.count` elements from the device into an array, and waits for them.
    public func download<T>(into values: inout [T], from source: UInt64) throws(CUDAError) {
        let result = values.withUnsafeMutableBytes { device.driver.cuMemcpyDtoHAsync($0.baseAddress, source, $0.count, handle) }
        try device.driver.check(result, "cuMemcpyDtoHAsync")
        try synchronize()
    }

    /// Copies `bytes` within the device, in order on this stream.
    public func copy(to target: UInt64, from source: UInt64, bytes: Int) throws(CUDAError) {
        try device.driver.check(device.driver.cuMemcpyDtoDAsync(target, source, bytes, handle), "cuMemcpyDtoDAsync")
    }

    /// Sets `count` 32-bit words at `target` to `pattern`, in stream order.
    package func fill32(_ target: UInt64, pattern: UInt32, count: Int) throws(CUDAError) {
        try device.driver.check(device.driver.cuMemsetD32Async(target, pattern, count, handle), "cuMemsetD32Async")
    }
}

/// A CUDA event, for timing or for ordering streams, destroyed when released.
public final class CUDAEvent: @unchecked Sendable {
    let handle: OpaquePointer?
    let device: CUDADevice

    /// Creates a timing event, or with `timing` false an event that only
    /// orders streams (cheaper to record and to wait for).
    public init(device: CUDADevice, timing: Bool = true) throws(CUDAError) {
        self.device = device
        var handle: OpaquePointer? = nil
        // CU_EVENT_DISABLE_TIMING = 0x2
        try device.driver.check(device.driver.cuEventCreate(&handle, timing ? 0 : 0x2), "cuEventCreate")
        self.handle = handle
    }

    deinit { _ = device.driver.cuEventDestroy(handle) }

    /// Records the event on a stream.
    public func record(_ stream: CUDAStream) throws(CUDAError) {
        try device.driver.check(device.driver.cuEventRecord(handle, stream.handle), "cuEventRecord")
    }

    /// Records the event on a caller's stream (a `CUstream` of the same
    /// context, such as PyTorch's current stream).
    public func record(_ stream: DeviceStream) throws(CUDAError) {
        try device.driver.check(device.driver.cuEventRecord(handle, OpaquePointer(bitPattern: stream.handle)), "cuEventRecord")
    }

    /// Makes a caller's stream wait (on the device) for the work recorded by this event.
    public func makeWait(_ stream: DeviceStream) throws(CUDAError) {
        try device.driver.check(device.driver.cuStreamWaitEvent(OpaquePointer(bitPattern: stream.handle), handle, 0),
                                "cuStreamWaitEvent")
    }

    /// Waits on the host for the work the event recorded.
    public func synchronize() throws(CUDAError) {
        try device.driver.check(device.driver.cuEventSynchronize(handle), "cuEventSynchronize")
    }

    /// Milliseconds from `start` to this event, after waiting for it.
    public func milliseconds(since start: CUDAEvent) throws(CUDAError) -> Double {
        try device.driver.check(device.driver.cuEventSynchronize(handle), "cuEventSynchronize")
        var ms: Float = 0
        try device.driver.check(device.driver.cuEventElapsedTime(&ms, start.handle, handle), "cuEventElapsedTime")
        return Double(ms)
    }
}
