import Glibc

/// A shared library opened with dlopen and never closed (its functions are
/// kept in tables for the life of the process).
struct SharedLibrary: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    let name: String

    /// Opens the first of `candidates` that loads.
    init(name: String, candidates: [String]) throws(CUDAError) {
        var reasons: [String] = []
        for candidate in candidates {
            if let handle = dlopen(candidate, RTLD_NOW | RTLD_LOCAL) {
                self.handle = handle
                self.name = candidate
                return
            }
            if let error = dlerror() { reasons.append(String(cString: error)) }
        }
        throw .libraryNotFound(library: name, tried: candidates, reason: reasons.last ?? "not found")
    }

    /// The function `symbol`, as the C function type `T`.
    func function<T>(_ symbol: String) throws(CUDAError) -> T {
        guard let pointer = dlsym(handle, symbol) else { throw .symbolMissing(library: name, symbol: symbol) }
        return unsafeBitCast(pointer, to: T.self)
    }

    /// The function `symbol` as type `T`, or nil where this version of the library lacks it.
    func optionalFunction<T>(_ symbol: String) -> T? {
        dlsym(handle, symbol).map { unsafeBitCast($0, to: T.self) }
    }
}
