/// Device memory of `count` elements of `T`, freed when released.
///
/// Ownership: the buffer owns its allocation; copies in and out take host
/// buffers the caller owns for the duration of the call.
public final class DeviceBuffer<T>: @unchecked Sendable {
    /// The device address.
    public let address: UInt64
    /// Elements.
    public let count: Int
    let device: CUDADevice

    /// Allocates `count` elements (uninitialized).
    public init(device: CUDADevice, count: Int) throws(CUDAError) {
        self.device = device
        self.count = count
        var address: UInt64 = 0
        try device.driver.check(device.driver.cuMemAlloc(&address, max(1, count) * MemoryLayout<T>.stride), "cuMemAlloc")
        self.address = address
    }

    /// Allocates and fills from a host array.
    public convenience init(device: CUDADevice, copying values: [T]) throws(CUDAError) {
        try self.init(device: device, count: values.count)
        try upload(values)
    }

    deinit { _ = device.driver.cuMemFree(address) }

    /// Bytes.
    public var byteCount: Int { count * MemoryLayout<T>.stride }

    // The copies and fills below go through the legacy stream, which does not
    // wait for our non-blocking streams, and a copy from pageable memory may
    // return before its DMA is done: each waits for the whole device before
    // and after, so that it is ordered with every stream. They are for setup,
    // checks and results, not for hot paths (streams have their own copies).

    /// Copies a host array in, ordered with all work on the device.
    public func upload(_ values: [T]) throws(CUDAError) {
        precondition(values.count <= count)
        try device.synchronize()
        let result = values.withUnsafeBytes { device.driver.cuMemcpyHtoD(address, $0.baseAddress, $0.count) }
        try device.driver.check(result, "cuMemcpyHtoD")
        try device.synchronize()
    }

    /// Copies the buffer out, after all work on the device.
    public func download() throws(CUDAError) -> [T] where T: BitwiseCopyable {
        try device.synchronize()
        var values = [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            initialized = count
            _ = buffer
        }
        let result = values.withUnsafeMutableBytes { device.driver.cuMemcpyDtoH($0.baseAddress, address, $0.count) }
        try device.driver.check(result, "cuMemcpyDtoH")
        return values
    }

    /// Fills every 32-bit word with `pattern` (0xFFFF_FFFF poisons floats with NaN).
    public func fill32(_ pattern: UInt32) throws(CUDAError) {
        try device.synchronize()
        try device.driver.check(device.driver.cuMemsetD32(address, pattern, byteCount / 4), "cuMemsetD32")
        try device.synchronize()
    }
}

/// Page-locked host memory of `count` elements, for asynchronous copies.
public final class PinnedBuffer<T>: @unchecked Sendable {
    /// The host pointer.
    public let pointer: UnsafeMutablePointer<T>
    /// Elements.
    public let count: Int
    let device: CUDADevice

    /// Allocates `count` elements (uninitialized).
    public init(device: CUDADevice, count: Int) throws(CUDAError) {
        self.device = device
        self.count = count
        var raw: UnsafeMutableRawPointer? = nil
        try device.driver.check(device.driver.cuMemHostAlloc(&raw, max(1, count) * MemoryLayout<T>.stride, 0), "cuMemHostAlloc")
        pointer = raw!.bindMemory(to: T.self, capacity: max(1, count))
    }

    deinit { _ = device.driver.cuMemFreeHost(pointer) }

    /// The elements as a buffer.
    public var buffer: UnsafeMutableBufferPointer<T> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}

/// Page-locked host memory mapped into the device's address space: the
/// device reads it over the bus, for tables larger than device memory
/// (HugeCTR's `uvm` cache type).
public final class MappedHostBuffer<T>: @unchecked Sendable {
    /// The host pointer.
    public let pointer: UnsafeMutablePointer<T>
    /// The address the device reads it at.
    public let deviceAddress: UInt64
    /// Elements.
    public let count: Int
    let device: CUDADevice

    /// Allocates and fills from a host array.
    public init(device: CUDADevice, copying values: [T]) throws(CUDAError) {
        self.device = device
        count = values.count
        var raw: UnsafeMutableRawPointer? = nil
        // CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP
        try device.driver.check(device.driver.cuMemHostAlloc(&raw, max(1, values.count) * MemoryLayout<T>.stride, 0x01 | 0x02),
                                "cuMemHostAlloc")
        let typed = raw!.bindMemory(to: T.self, capacity: max(1, values.count))
        pointer = typed
        _ = values.withUnsafeBufferPointer { UnsafeMutableBufferPointer(start: typed, count: values.count).initialize(from: $0) }
        var address: UInt64 = 0
        try device.driver.check(device.driver.cuMemHostGetDevicePointer(&address, raw, 0), "cuMemHostGetDevicePointer")
        deviceAddress = address
    }

    deinit { _ = device.driver.cuMemFreeHost(pointer) }

    /// Bytes.
    public var byteCount: Int { count * MemoryLayout<T>.stride }
}
