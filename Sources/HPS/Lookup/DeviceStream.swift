/// A caller's CUDA stream (a `CUstream` of the GPU's primary context, such as
/// PyTorch's current stream): a lookup from device keys starts after the work
/// queued on it before the call, which may still be writing the keys.
///
/// The core module never uses it; the GPU caches (`HPSCUDA`) record an event
/// on it and make their own stream wait for that event on the device.
public struct DeviceStream: Sendable, Hashable {
    /// The `CUstream` handle; 0 is the legacy default stream.
    public var handle: UInt

    /// The stream with handle `handle`.
    @inlinable
    public init(handle: UInt) {
        self.handle = handle
    }

    /// The legacy default stream (handle 0), which orders after all blocking streams' work.
    public static let legacyDefault = DeviceStream(handle: 0)
}
