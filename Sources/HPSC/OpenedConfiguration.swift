import CHPS
import Glibc
import HPS
import HPSCUDA
import HPSMapped
import HPSRedis
import HPSRocksDB
import Logging

/// What an `hps_handle` points to: a configuration opened as `hps serve`
/// opens it (its tiers built, its models loaded), the background work of its
/// tiers and caches running until `close`, and the sessions lookups go
/// through.
///
/// Thread safety: lookups may run concurrently; `close` is the last call.
final class OpenedConfiguration: @unchecked Sendable {
    let server: HierarchicalParameterServer
    /// Whether the models with `gpucache: true` are served from their GPUs.
    let onGPU: Bool
    private let tasks: [Task<Void, Never>]
    private let running: Locked<Int>

    /// The tiers of this library beyond the hash maps: Redis Cluster and the
    /// mapped tier always, RocksDB with the RocksDB trait.
    static let backends: [StoreBackend] = {
        var backends: [StoreBackend] = [.redisCluster, .mapped]
        #if RocksDB
        backends.append(.rocksDB)
        #endif
        return backends
    }()

    /// Opens `path` for `device` ("cpu", "gpu" or "auto").
    init(path: String, device: String) throws {
        guard ["cpu", "gpu", "auto"].contains(device) else {
            throw CFailure(HPS_INVALID_ARGUMENT, "The device must be \"cpu\", \"gpu\" or \"auto\", not \"\(device)\".")
        }
        let configuration = try HPSConfiguration.load(path: path)
        // Warnings and errors on stderr; a library in someone else's process keeps its routine lines to itself.
        var logger = Logger(label: "hps", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .warning
        var server: HierarchicalParameterServer? = nil
        var onGPU = false
        if device != "cpu" {
            do {
                let gpuModels = configuration.models.filter(\.gpuCache)
                guard !gpuModels.isEmpty else {
                    throw CFailure(HPS_DEVICE, "No model of \(path) has gpucache true, so none can be served from a GPU.")
                }
                // Every device asked for, before a table is loaded.
                for index in Set(gpuModels.flatMap(\.effectiveDevices)).sorted() { _ = try CUDADevice(index: index) }
                server = try HierarchicalParameterServer(configuration: configuration, backends: Self.backends, logger: logger,
                                                     gpu: GPUCacheFactory())
                onGPU = true
            } catch {
                // "auto" falls back to the CPU; "gpu" says why not.
                guard device == "auto" else { throw error }
            }
        }
        self.server = try server ?? HierarchicalParameterServer(configuration: configuration, backends: Self.backends, logger: logger)
        self.onGPU = onGPU
        let running = Locked(0)
        self.running = running
        tasks = self.server.backgroundWork.map { work in
            running.withLock { $0 += 1 }
            return Task.detached {
                try? await work.run(blocking: .dedicatedThread)
                running.withLock { $0 -= 1 }
            }
        }
    }

    /// Stops the background work and waits (up to 10 s) for it to end.
    func close() {
        for task in tasks { task.cancel() }
        let deadline = ContinuousClock.now + .seconds(10)
        while running.withLock({ $0 }) > 0 && ContinuousClock.now < deadline { usleep(1000) }
    }

    /// The session a lookup of `model` writing to `memory` goes through: the
    /// model's session on `device` for device memory; for host memory, its
    /// first GPU's when it is served from a GPU, else its CPU session.
    func session(model: String, memory: hps_memory, device: Int32) throws -> LookupSession {
        switch memory {
        case HPS_MEMORY_HOST:
            if let first = server.deviceSessions(model: model).first { return first }
            return try server.session(model: model)
        case HPS_MEMORY_DEVICE:
            _ = try server.session(model: model)  // an unknown model says so first
            return try server.session(model: model, device: Int(device))
        default:
            throw CFailure(HPS_INVALID_ARGUMENT, "The memory kind must be HPS_MEMORY_HOST (0) or HPS_MEMORY_DEVICE (1), not \(memory.rawValue).")
        }
    }
}
