/// An address in one GPU's memory, typed by what it points to.
///
/// The core module knows no GPU API: this is the value a caller passes to say
/// "write the vectors there", and that the GPU caches (`HPSCUDA`) read back.
/// It is never dereferenced on the host.
public struct DevicePointer<Pointee>: Sendable, Hashable {
    /// The device's index (as in `deployed_device_list`).
    public var device: Int
    /// The address in the device's unified address space.
    public var address: UInt64

    /// A pointer to `address` on `device`.
    @inlinable
    public init(device: Int, address: UInt64) {
        self.device = device
        self.address = address
    }

    /// The pointer `count` elements further on.
    @inlinable
    public static func + (pointer: DevicePointer, count: Int) -> DevicePointer {
        DevicePointer(device: pointer.device, address: pointer.address &+ UInt64(count * MemoryLayout<Pointee>.stride))
    }
}

/// Where a lookup writes its vectors: the caller's host memory, or the
/// memory of the GPU a session runs on (for a caller such as a dense head on
/// the same GPU, so that the vectors never cross the bus).
public enum LookupDestination: @unchecked Sendable {
    /// Host memory of `count` floats.
    case host(UnsafeMutableBufferPointer<Float>)
    /// Device memory of `count` floats on the session's device.
    case device(DevicePointer<Float>, count: Int)

    /// The floats the destination holds.
    public var count: Int {
        switch self {
        case let .host(buffer): buffer.count
        case let .device(_, count): count
        }
    }
}

/// How a lookup places its rows in a device destination.
public enum OutputLayout: Sendable, Equatable {
    /// Run after run, each run's rows in key order.
    case runs
    /// The concatenated input of a dense layer: runs of `samples × keysPerSample`
    /// keys (one per table), and run r's key j, of sample s = j / keysPerSample,
    /// at row (s × runs + r) × keysPerSample + j % keysPerSample.
    case samplesByRun(keysPerSample: Int)
}
