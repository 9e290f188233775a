import HPS

/// The seed model's tables on one GPU: one static table per table (the
/// unfused model) and one fused static table of all of them, built from the
/// model folders that `SeedModel.write` made.
final class GPUSeedModel {
    let model: SeedModel
    let kernels: GPUKernels
    let fused: GPUStaticTable
    let unfused: [GPUStaticTable]
    let folders: [(keys: [Int64], vectors: [Float])]

    init(model: SeedModel, directory: String, kernels: GPUKernels) throws {
        self.model = model
        self.kernels = kernels
        let configuration = try HPSConfiguration.load(path: "\(directory)/hps.json")
        guard let config = configuration.model(named: model.modelName) else {
            throw CUDAError.unsupported("\(directory)/hps.json has no model \(model.modelName)")
        }
        let keyType: KeyType = configuration.supportLongLong ? .int64 : .int32
        folders = try (0..<config.tableCount).map { table in
            try SparseModelFolder(path: HierarchicalParameterServer.resolve(config.sparseFiles[table], base: configuration.baseDirectory),
                                  table: config.tableNames[table], vecSize: config.vecSizes[table]).readAll(keyType: keyType)
        }
        let int64Keys = keyType == .int64
        fused = try GPUStaticTable(kernels: kernels, dim: model.dim, members: folders, defaults: config.defaultValues,
                                   int64Keys: int64Keys)
        unfused = try folders.enumerated().map { table, rows in
            try GPUStaticTable(kernels: kernels, dim: model.dim, members: [rows], defaults: [config.defaultValues[table]],
                               int64Keys: int64Keys)
        }
    }

    /// Bytes of one key as uploaded.
    var keyBytes: Int { fused.int64Keys ? 8 : 4 }

    /// Writes a batch's keys, table after table, into `target` as uploaded.
    func pack(_ batch: [[Int64]], into target: UnsafeMutableRawPointer) {
        var offset = 0
        for keys in batch {
            for key in keys {
                if fused.int64Keys {
                    target.storeBytes(of: key, toByteOffset: offset, as: Int64.self)
                } else {
                    target.storeBytes(of: UInt32(truncatingIfNeeded: key), toByteOffset: offset, as: UInt32.self)
                }
                offset += keyBytes
            }
        }
    }
}
