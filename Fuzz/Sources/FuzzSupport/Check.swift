#if canImport(Glibc)
import Glibc
#endif

/// Stops the run with `message` when `condition` is false: libFuzzer takes
/// the abort for a crash and keeps the input that caused it.
public func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    guard !condition else { return }
    let line = "fuzz check failed: \(message())\n"
    _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
    abort()
}

/// The input as a buffer (libFuzzer passes a null pointer for the empty input).
public func input(_ data: UnsafePointer<UInt8>?, _ size: Int) -> UnsafeRawBufferPointer {
    guard let data, size > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: data, count: size)
}
