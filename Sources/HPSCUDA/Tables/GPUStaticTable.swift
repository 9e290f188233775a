import HPS

/// HugeCTR's static embedding cache: a whole (possibly fused) table in GPU
/// memory behind a GPU hash index, read-only, the fastest path.
///
/// The index is a ranked two-choice one (`GPUTableIndex`): 8-byte slots
/// that hold only keys, in buckets of four, a key in one of two buckets,
/// filled to at most `GPUTableIndex.maximumLoad`, with the vectors in slot
/// order; built on the host with the CPU's `KeyHash` and probed by the kernel
/// with the same function. Members of a fused table keep their keys apart as
/// on the CPU: the member is part of the hash and is kept per slot.
///
/// Thread safety: lookups may run concurrently on different streams.
public final class GPUStaticTable: @unchecked Sendable {
    /// Floats per vector.
    public let dim: Int
    /// Member tables.
    public let memberCount: Int
    /// Whether keys are uploaded as int64 (else as uint32).
    public let int64Keys: Bool
    /// Distinct (member, key) pairs held.
    public let count: Int
    let capacity: Int
    /// The ranked index: slot keys, blocks (taken bits, rows before) and slot
    /// members (none for a table of one member).
    let slotKeys: DeviceBuffer<Int64>
    let blocks: DeviceBuffer<UInt64>
    let slotMembers: DeviceBuffer<UInt16>?
    /// The vectors: in device memory, or in mapped host memory for `uvm`.
    let vectors: Storage
    let defaults: DeviceBuffer<Float>
    let kernel: CUDAKernel
    let kernels: GPUKernels

    /// Where a table's vectors live.
    public enum Placement: Sendable {
        /// In device memory (`static`).
        case device
        /// In page-locked host memory the device reads over the bus (`uvm`),
        /// for tables larger than device memory; the index stays on the device.
        case mappedHost
    }

    enum Storage {
        case device(DeviceBuffer<Float>)
        case mappedHost(MappedHostBuffer<Float>)

        var address: UInt64 {
            switch self {
            case .device(let buffer): buffer.address
            case .mappedHost(let buffer): buffer.deviceAddress
            }
        }

        var deviceBytes: Int {
            switch self {
            case .device(let buffer): buffer.byteCount
            case .mappedHost: 0
            }
        }
    }

    /// Where the vectors live.
    public let placement: Placement

    /// Builds the table from its members' rows.
    /// - Parameters:
    ///   - members: per member, (n) keys and (n × dim) floats; a repeated key keeps its last row.
    ///   - defaults: per member, the value of a missing key's elements.
    ///   - placement: device memory, or mapped host memory.
    public init(kernels: GPUKernels, dim: Int, members: [(keys: [Int64], vectors: [Float])], defaults: [Float],
                int64Keys: Bool, placement: Placement = .device) throws(CUDAError) {
        self.placement = placement
        self.dim = dim
        self.memberCount = members.count
        self.int64Keys = int64Keys
        self.kernels = kernels
        let index = try GPUTableIndex(members: members, dim: dim)
        capacity = index.capacity
        count = index.count
        let device = kernels.device
        slotKeys = try DeviceBuffer(device: device, copying: index.slotKeys)
        blocks = try DeviceBuffer(device: device, copying: index.blocks)
        slotMembers = index.slotMembers.isEmpty ? nil : try DeviceBuffer(device: device, copying: index.slotMembers)
        switch placement {
        case .device: vectors = .device(try DeviceBuffer(device: device, copying: index.vectors))
        case .mappedHost: vectors = .mappedHost(try MappedHostBuffer(device: device, copying: index.vectors))
        }
        self.defaults = try DeviceBuffer(device: device, copying: defaults)
        kernel = try kernels.lookup(dim: dim, int64Keys: int64Keys)
    }

    /// Device address of the vectors (rows of `dim` floats).
    var vectorsAddress: UInt64 { vectors.address }

    /// Bytes of device memory held.
    public var deviceBytes: Int {
        slotKeys.byteCount + blocks.byteCount + (slotMembers?.byteCount ?? 0) + vectors.deviceBytes + defaults.byteCount
    }

    /// Device address of the slot members, 0 for a table of one member.
    var slotMembersAddress: UInt64 { slotMembers?.address ?? 0 }

    /// How a lookup's output rows are laid out.
    public enum Layout: Int32, Sendable {
        /// Row i for key i.
        case keyOrder = 0
        /// The concatenated input of a dense layer: run r's key j of sample
        /// s = j / keysPerSample goes to row (s × runs + r) × keysPerSample + j % keysPerSample.
        case samplesByRun = 1
    }

    /// Looks up `count` keys already on the device, in one launch.
    /// - Parameters:
    ///   - keys: device address of `count` keys (int64 or uint32, as the table was built).
    ///   - runStarts: device address of (runs + 1) Int32 offsets into the keys.
    ///   - runMembers: device address of (runs) Int32 member indices.
    ///   - output: device address of `count × dim` floats.
    ///   - misses: device address of one UInt32 that counts missing keys, or 0.
    public func lookup(keys: UInt64, count: Int, runStarts: UInt64, runMembers: UInt64, runs: Int,
                       output: UInt64, layout: Layout = .keyOrder, keysPerSample: Int = 1, misses: UInt64 = 0,
                       stream: CUDAStream) throws(CUDAError) {
        try LookupLaunch(keys: keys, count: count, runStarts: runStarts, runMembers: runMembers, runs: runs,
                         slots: slotKeys.address, capacity: capacity, rowBits: 32, vectors: vectors.address,
                         defaults: defaults.address, output: output, layout: layout, keysPerSample: keysPerSample,
                         misses: misses, rankBlocks: blocks.address, slotMembers: slotMembersAddress)
            .launch(kernel, device: kernels.device, stream: stream)
    }
}
