/// Named device buffers kept between calls and grown when a call needs more,
/// so that a request allocates no device memory once they are large enough.
///
/// Thread safety: none; the owner serializes its calls (and waits for work
/// that still reads a buffer before asking for it again).
final class DeviceScratch {
    private let device: CUDADevice
    private var buffers: [String: DeviceBuffer<UInt8>] = [:]

    init(device: CUDADevice) {
        self.device = device
    }

    /// The buffer `name`, at least `bytes` long (64 KiB at least, to grow rarely).
    func buffer(_ name: String, bytes: Int) throws(CUDAError) -> DeviceBuffer<UInt8> {
        if let buffer = buffers[name], buffer.count >= bytes { return buffer }
        let buffer = try DeviceBuffer<UInt8>(device: device, count: max(bytes, 1 << 16))
        buffers[name] = buffer
        return buffer
    }
}
