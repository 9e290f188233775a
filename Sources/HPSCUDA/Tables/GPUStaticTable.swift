import HPS

/// HugeCTR's static embedding cache: a whole (possibly fused) table in GPU
/// memory behind a GPU hash index, read-only, the fastest path.
///
/// The index is open addressing with linear probing over 16-byte slots
/// (key, ref), filled to at most one half, built on the host with the CPU's
/// `KeyHash` and probed by the kernel with the same function. Members of a
/// fused table keep their keys apart as on the CPU: the member is part of the
/// hash and of the ref.
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
    let rowBits: Int
    let slots: DeviceBuffer<UInt64>
    let vectors: DeviceBuffer<Float>
    let defaults: DeviceBuffer<Float>
    let kernel: CUDAKernel
    let kernels: GPUKernels

    /// Builds the table from its members' rows.
    /// - Parameters:
    ///   - members: per member, (n) keys and (n × dim) floats; a repeated key keeps its last row.
    ///   - defaults: per member, the value of a missing key's elements.
    public init(kernels: GPUKernels, dim: Int, members: [(keys: [Int64], vectors: [Float])], defaults: [Float],
                int64Keys: Bool) throws(CUDAError) {
        self.dim = dim
        self.memberCount = members.count
        self.int64Keys = int64Keys
        self.kernels = kernels
        let rows = members.reduce(0) { $0 + $1.keys.count }
        let memberBits = members.count <= 1 ? 0 : (Int.bitWidth - (members.count - 1).leadingZeroBitCount)
        rowBits = 32 - memberBits
        guard rows < (1 << rowBits) - 1 else {
            throw .unsupported("a GPU table of \(members.count) members holds at most \((1 << rowBits) - 2) rows, not \(rows)")
        }
        capacity = max(16, rows * 2)
        var slotWords = [UInt64](repeating: 0, count: capacity * 2)
        var allVectors: [Float] = []
        allVectors.reserveCapacity(rows * dim)
        var distinct = 0
        var row = 0
        for (member, table) in members.enumerated() {
            precondition(table.vectors.count == table.keys.count * dim, "member \(member) vectors are not keys × dim")
            allVectors.append(contentsOf: table.vectors)
            for key in table.keys {
                let ref = UInt64(UInt32(truncatingIfNeeded: (member << rowBits) | row) &+ 1)
                var slot = KeyHash.slot(KeyHash.hash(key, member: member), capacity: capacity)
                while true {
                    let stored = slotWords[slot * 2 + 1] & 0xFFFF_FFFF
                    if stored == 0 {
                        slotWords[slot * 2] = UInt64(bitPattern: key)
                        slotWords[slot * 2 + 1] = ref
                        distinct += 1
                        break
                    }
                    let storedMember = rowBits == 32 ? 0 : Int((UInt32(stored) &- 1) >> UInt32(rowBits))
                    if slotWords[slot * 2] == UInt64(bitPattern: key) && storedMember == member {
                        slotWords[slot * 2 + 1] = ref  // the last row wins
                        break
                    }
                    slot = slot + 1 == capacity ? 0 : slot + 1
                }
                row += 1
            }
        }
        count = distinct
        let device = kernels.device
        slots = try DeviceBuffer(device: device, copying: slotWords)
        vectors = try DeviceBuffer(device: device, copying: allVectors)
        self.defaults = try DeviceBuffer(device: device, copying: defaults)
        kernel = try kernels.lookup(dim: dim, int64Keys: int64Keys)
    }

    /// Bytes of device memory held.
    public var deviceBytes: Int { slots.byteCount + vectors.byteCount + defaults.byteCount }

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
        guard count > 0 else { return }
        // Up to 32 keys per warp, fewer when that leaves the GPU idle: about
        // 48 warps per multiprocessor keep its memory pipes full.
        let warpsToFill = max(1, kernels.device.multiprocessors * 48)
        var keysPerWarp = 32
        while keysPerWarp > 1 && count / keysPerWarp < warpsToFill { keysPerWarp /= 2 }
        let warps = (count + keysPerWarp - 1) / keysPerWarp
        let block = 256
        let grid = (warps * 32 + block - 1) / block
        try kernel.launch(grid: grid, block: block, stream: stream, [
            keys, Int32(count), runStarts, runMembers, Int32(runs),
            slots.address, UInt32(capacity), UInt32(rowBits),
            vectors.address, defaults.address,
            output, layout.rawValue, Int32(keysPerSample), misses, Int32(keysPerWarp),
        ])
    }
}
