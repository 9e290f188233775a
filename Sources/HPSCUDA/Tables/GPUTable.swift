/// One fusion group's table on a GPU, of either kind.
enum GPUTable {
    /// A static table (`static`, or `uvm` with its vectors in mapped host memory).
    case staticTable(GPUStaticTable)
    /// A dynamic cache in front of the CPU tiers.
    case dynamicCache(GPUDynamicCache)
}
