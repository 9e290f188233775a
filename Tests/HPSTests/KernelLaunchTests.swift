import FoundationEssentials
import Testing
import HPS

@testable import HPSCUDA

/// What a kernel launch is made of, checked without a GPU: the kernels'
/// source file as embedded, the tuning value, and the packing of launch
/// arguments with its check against the kernel's parameters.
struct KernelLaunchTests {
    @Test("the embedded kernel source is Lookup.cu, byte for byte, behind the specialization's defines")
    func embeddedSource() throws {
        let path = String(#filePath.split(separator: "/Tests/")[0]) + "/Sources/HPSCUDA/Kernels/Lookup.cu"
        let file = try String(contentsOfFile: path, encoding: .utf8)
        #expect(KernelSource.body == file)
        let source = KernelSource.lookup(dim: 64, int64Keys: true)
        #expect(source.hasSuffix(file))
        #expect(source.hasPrefix("#define DIM 64\n#define LANES 16\n#define KEY_T long long\n"))
    }

    @Test("a tuning written as hps bench --gpu-tuning takes it sets what it names and keeps the rest")
    func parsing() throws {
        let tuning = try GPUTuning(parsing: "block=128, fill-warps=8,define=STORE_STREAMING,define=MAX_UNROLL=8")
        #expect(tuning.blockThreads == 128)
        #expect(tuning.fillWarpsPerMultiprocessor == 8)
        #expect(tuning.indexLoad == GPUTuning().indexLoad)
        #expect(tuning.defines == ["STORE_STREAMING": "1", "MAX_UNROLL": "8"])
        // In name order, so that equal tunings compile (and are cached) alike.
        #expect(tuning.defineLines == "#define MAX_UNROLL 8\n#define STORE_STREAMING 1\n")
        #expect(KernelSource.lookup(dim: 4, int64Keys: false, tuning: tuning).contains("#define ROW_BYTES 16\n#define MAX_UNROLL 8\n"))
        #expect(KernelSource.lookup(dim: 128, int64Keys: true, storage: .int8).contains("#define STORAGE 3\n#define ROW_BYTES 136\n"))
        #expect(try GPUTuning(parsing: "") == GPUTuning())
        #expect(GPUTuning().defineLines.isEmpty)
    }

    @Test("a tuning setting that is unknown or out of range is refused, named in the error",
          arguments: [("block=100", "block=100: threads per block must be a multiple of 32 from 32 to 1024"),
                      ("block=2048", "block=2048: threads per block"),
                      ("block=many", "block=many: block takes a whole number"),
                      ("fill-warps=0", "fill-warps=0: warps per multiprocessor must be at least 1"),
                      ("index-load=0.99", "index-load=0.99: the index's load must be above 0.1 and at most 0.95"),
                      ("define=1X", "define=1X: a define's name must be a C identifier"),
                      ("warp=4", "warp=4: unknown setting warp"),
                      ("block", "block: each setting is NAME=VALUE")])
    func refused(text: String, message: String) {
        #expect {
            try GPUTuning(parsing: text)
        } throws: { error in
            "\(error)".hasPrefix("GPU tuning \(message)")
        }
    }

    @Test("launch arguments are packed into 8-byte slots, each pointed to, in order")
    func packing() throws {
        let values: (UInt64, Int32, UInt32, Float) = (0xDEAD_BEEF_0000_0001, -7, 9, 1.5)
        let read = try KernelArguments.withPacked(values.0, values.1, values.2, values.3, kernel: "k", expectedSizes: [8, 4, 4, 4]) { params in
            (params[0]!.load(as: UInt64.self), params[1]!.load(as: Int32.self), params[2]!.load(as: UInt32.self),
             params[3]!.load(as: Float.self), params[1]! - params[0]!, params[3]! - params[2]!)
        }
        #expect(read.0 == values.0 && read.1 == values.1 && read.2 == values.2 && read.3 == values.3)
        #expect(read.4 == 8 && read.5 == 8)
        // Without the driver's sizes (CUDA before 12.4) the arguments are passed unchecked.
        let unchecked = try KernelArguments.withPacked(UInt64(3), Int32(4), kernel: "k", expectedSizes: nil) { params in
            params[1]!.load(as: Int32.self)
        }
        #expect(unchecked == 4)
    }

    @Test("arguments that do not match the kernel's parameters are refused before the launch")
    func mismatch() {
        var called = false
        #expect {
            try KernelArguments.withPacked(UInt64(1), Int32(2), kernel: "hps_dense", expectedSizes: [8, 4, 8]) { _ in called = true }
        } throws: { error in
            "\(error)" == "kernel hps_dense was launched with the wrong arguments: it takes 3 argument(s), not 2"
        }
        #expect {
            // An Int where the kernel takes an int: the bug this check is for.
            try KernelArguments.withPacked(UInt64(1), 2, kernel: "hps_concat", expectedSizes: [8, 4]) { _ in called = true }
        } throws: { error in
            "\(error)" == "kernel hps_concat was launched with the wrong arguments: argument 2 has 8 bytes where the parameter has 4"
        }
        #expect {
            try KernelArguments.withPacked(UInt64(1), (UInt64(1), UInt64(2)), kernel: "k", expectedSizes: nil) { _ in called = true }
        } throws: { error in
            "\(error)".hasSuffix("argument 2 has 16 bytes, more than a slot's 8")
        }
        #expect(!called)
    }
}
