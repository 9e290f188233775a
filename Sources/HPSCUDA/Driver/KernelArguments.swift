/// The arguments of one kernel launch as `cuLaunchKernel` takes them: an
/// array of pointers, one to each argument's bytes. Both live in stack
/// memory for the launch (`withUnsafeTemporaryAllocation`), every argument
/// in an 8-byte-aligned slot of its own.
package enum KernelArguments {
    /// The most arguments a launch passes.
    package static let maximumCount = 32
    /// The largest argument: a device address or a 64-bit count.
    package static let slotBytes = 8

    /// Calls `body` with the packed arguments, after checking them against
    /// `expectedSizes` (the kernel's parameters' sizes, when known).
    /// - Throws: `CUDAError.launchArguments` naming `kernel` and the first
    ///   argument that does not match, or one larger than a slot.
    package static func withPacked<each Argument: BitwiseCopyable, Result>(
        _ arguments: repeat each Argument, kernel: String, expectedSizes: [Int]?,
        _ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Result
    ) throws(CUDAError) -> Result {
        var count = 0
        for _ in repeat each arguments { count += 1 }
        if let expectedSizes, expectedSizes.count != count {
            throw .launchArguments(kernel: kernel, reason: "it takes \(expectedSizes.count) argument(s), not \(count)")
        }
        guard count <= maximumCount else {
            throw .launchArguments(kernel: kernel, reason: "\(count) arguments are more than the \(maximumCount) a launch passes")
        }
        // (withUnsafeTemporaryAllocation rethrows untyped, so the error comes out as a value.)
        let outcome = withUnsafeTemporaryAllocation(byteCount: maximumCount * slotBytes, alignment: slotBytes) { storage in
            withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: maximumCount) { pointers -> Swift.Result<Result, CUDAError> in
                var index = 0
                var mismatch: CUDAError? = nil
                for argument in repeat each arguments {
                    let size = MemoryLayout.size(ofValue: argument)
                    if mismatch == nil {
                        if size > slotBytes {
                            mismatch = .launchArguments(kernel: kernel, reason: "argument \(index + 1) has \(size) bytes, more than a slot's \(slotBytes)")
                        } else if let expectedSizes, expectedSizes[index] != size {
                            mismatch = .launchArguments(kernel: kernel,
                                reason: "argument \(index + 1) has \(size) bytes where the parameter has \(expectedSizes[index])")
                        }
                    }
                    if mismatch == nil {
                        let slot = storage.baseAddress! + index * slotBytes
                        withUnsafeBytes(of: argument) { slot.copyMemory(from: $0.baseAddress!, byteCount: size) }
                        pointers[index] = slot
                    }
                    index += 1
                }
                if let mismatch { return .failure(mismatch) }
                return .success(body(pointers.baseAddress!))
            }
        }
        return try outcome.get()
    }
}
