import Glibc
import HPS

/// Compiled kernels kept on disk, so that a process after the first skips
/// NVRTC: one cubin per (source, options, card), named by a hash of the three.
///
/// The folder is `$HPS_KERNEL_CACHE`, else `$XDG_CACHE_HOME/swift-hps/kernels`,
/// else `~/.cache/swift-hps/kernels`; `HPS_KERNEL_CACHE=off` turns it off. A
/// cache that cannot be read or written is skipped silently: it only saves time.
struct KernelCache {
    /// The folder, or nil when caching is off or no folder can be named.
    let folder: String?

    /// The cache the environment describes.
    static func fromEnvironment() -> KernelCache {
        if let setting = getenvString("HPS_KERNEL_CACHE") {
            return KernelCache(folder: setting == "off" || setting.isEmpty ? nil : setting)
        }
        if let xdg = getenvString("XDG_CACHE_HOME"), !xdg.isEmpty { return KernelCache(folder: "\(xdg)/swift-hps/kernels") }
        if let home = getenvString("HOME"), !home.isEmpty { return KernelCache(folder: "\(home)/.cache/swift-hps/kernels") }
        return KernelCache(folder: nil)
    }

    /// The file name for a compilation: a 64-bit FNV-1a hash of its inputs, in hex.
    static func key(source: String, options: [String], card: String) -> String {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for part in [source, options.joined(separator: "\u{1}"), card] {
            for byte in part.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
            hash = (hash ^ 0xFF) &* 0x100_0000_01B3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex + ".cubin"
    }

    /// The cached cubin, if present.
    func load(_ key: String) -> [UInt8]? {
        guard let folder, let bytes = try? OpenFile.readAll(path: "\(folder)/\(key)") else { return nil }
        return bytes.isEmpty ? nil : bytes
    }

    /// Stores a cubin: written to a temporary name, then renamed, so a reader
    /// never sees half a file.
    func store(_ key: String, _ cubin: [UInt8]) {
        guard let folder else { return }
        var prefix = folder.hasPrefix("/") ? "/" : ""
        for part in folder.split(separator: "/") {
            prefix += part
            _ = mkdir(prefix, 0o755)
            prefix += "/"
        }
        let temporary = "\(folder)/.\(key).\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        let written = cubin.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        if written == cubin.count {
            rename(temporary, "\(folder)/\(key)")
        } else {
            unlink(temporary)
        }
    }
}

/// An environment variable's value.
package func getenvString(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}
