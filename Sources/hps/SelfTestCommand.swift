import HPSSelfTest
import ArgumentParser
import HPS
import HPSCUDA

/// `hps selftest`: the GPU paths against the CPU path on fresh random data.
struct SelfTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Check every GPU lookup path against the CPU on fresh random data (vec sizes 1, 3, 16, 128, 300; int64 and int32 keys; hits and misses)."
    )

    @Option(help: "Where to check: gpu (the CPU path is the reference).")
    var device: String = "gpu"
    @Option(help: "The GPU's ordinal.")
    var gpu = 0

    func run() throws {
        try reportingErrors {
            guard device == "gpu" else { throw ValidationError("--device must be gpu: the self-test checks the GPU against the CPU") }
            let cudaDevice = try CUDADevice(index: gpu)
            print("self-test on \(cudaDevice.name) (compute capability \(cudaDevice.computeCapability.major).\(cudaDevice.computeCapability.minor), \(cudaDevice.multiprocessors) SMs)")
            let cases = try GPUSelfTest.run(kernels: GPUKernels(device: cudaDevice))
            for c in cases { print("\(c.passed ? "PASS" : "FAIL")  \(c.name): \(c.detail)") }
            let failed = cases.filter { !$0.passed }.count
            print("\(cases.count - failed) passed, \(failed) failed")
            if failed > 0 { throw ExitCode(1) }
        }
    }
}
