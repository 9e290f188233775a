/// The arguments of one launch of `hps_lookup`, shared by the static table
/// and the dynamic cache.
package struct LookupLaunch {
    var keys: UInt64
    var count: Int
    var runStarts: UInt64
    var runMembers: UInt64
    var runs: Int
    var slots: UInt64
    var capacity: Int
    var rowBits: Int
    var vectors: UInt64
    var defaults: UInt64
    var output: UInt64
    var layout: GPUStaticTable.Layout
    var keysPerSample: Int
    var misses: UInt64 = 0
    var stamps: UInt64 = 0
    var epoch: UInt32 = 0
    var missIndex: UInt64 = 0
    /// A static table's ranked index (`slots` then holds its slot keys): the
    /// blocks and the slot members (0 for one member); 0 for a dynamic cache.
    var rankBlocks: UInt64 = 0
    var slotMembers: UInt64 = 0
    /// With `misses` three words (`GPUMissCounter`): host memory mapped into
    /// the device where the kernel's last warp publishes the miss count; 0 when
    /// `misses` is one word that only counts.
    var hostMisses: UInt64 = 0

    /// The arguments, each as its field says (the benchmarks launch the kernel alone).
    package init(keys: UInt64, count: Int, runStarts: UInt64, runMembers: UInt64, runs: Int, slots: UInt64, capacity: Int,
                 rowBits: Int, vectors: UInt64, defaults: UInt64, output: UInt64, layout: GPUStaticTable.Layout,
                 keysPerSample: Int, misses: UInt64 = 0, stamps: UInt64 = 0, epoch: UInt32 = 0, missIndex: UInt64 = 0,
                 rankBlocks: UInt64 = 0, slotMembers: UInt64 = 0, hostMisses: UInt64 = 0) {
        self.keys = keys
        self.count = count
        self.runStarts = runStarts
        self.runMembers = runMembers
        self.runs = runs
        self.slots = slots
        self.capacity = capacity
        self.rowBits = rowBits
        self.vectors = vectors
        self.defaults = defaults
        self.output = output
        self.layout = layout
        self.keysPerSample = keysPerSample
        self.misses = misses
        self.stamps = stamps
        self.epoch = epoch
        self.missIndex = missIndex
        self.rankBlocks = rankBlocks
        self.slotMembers = slotMembers
        self.hostMisses = hostMisses
    }

    /// Launches on `stream`, shaped as the kernels' tuning says.
    package func launch(_ kernel: CUDAKernel, kernels: GPUKernels, stream: CUDAStream) throws(CUDAError) {
        let device = kernels.device
        guard count > 0 else { return }
        // Up to 32 keys per warp, fewer when that would leave multiprocessors
        // with too few warps to keep rows in flight.
        let warpsToFill = max(1, device.multiprocessors * kernels.tuning.fillWarpsPerMultiprocessor)
        var keysPerWarp = 32
        while keysPerWarp > 1 && count / keysPerWarp < warpsToFill { keysPerWarp /= 2 }
        let warps = (count + keysPerWarp - 1) / keysPerWarp
        let block = kernels.tuning.blockThreads
        try kernel.launch(grid: (warps * 32 + block - 1) / block, block: block, stream: stream,
            keys, Int32(count), runStarts, runMembers, Int32(runs),
            slots, UInt32(capacity), UInt32(rowBits),
            vectors, defaults,
            output, layout.rawValue, Int32(keysPerSample), misses, Int32(keysPerWarp),
            stamps, epoch, missIndex, rankBlocks, slotMembers, hostMisses)
    }
}
