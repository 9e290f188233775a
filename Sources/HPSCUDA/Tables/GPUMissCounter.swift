/// Where `hps_lookup` counts a lookup's misses when the host reads the
/// count: three device words (the count the warps add to, the warps done,
/// and the count published for the kernels that follow the lookup) and one
/// word of page-locked host memory mapped into the device, where the
/// kernel's last warp writes the count.
///
/// The kernel leaves the first two words zero for the next lookup, so a
/// lookup needs no copy of a zeroed counter before its launch and no copy of
/// the count after it: the host reads `count` once the stream is
/// synchronized. One per `GPULookupStage`, used under its owner's lock, by
/// one lookup at a time in stream order.
final class GPUMissCounter {
    private let words: DeviceBuffer<UInt32>
    private let host: MappedHostBuffer<UInt32>

    init(device: CUDADevice) throws(CUDAError) {
        words = try DeviceBuffer(device: device, copying: [0, 0, 0, 0])
        host = try MappedHostBuffer(device: device, copying: [0])
    }

    /// The kernel's `misses` argument: the three words.
    var counting: UInt64 { words.address }
    /// The kernel's `hostMisses` argument: the mapped word's device address.
    var hostAddress: UInt64 { host.deviceAddress }
    /// The device word holding the last lookup's count, for the kernels after it.
    var published: UInt64 { words.address + 8 }
    /// The last lookup's count, once its stream is synchronized.
    var count: Int { Int(host.pointer.pointee) }
}
