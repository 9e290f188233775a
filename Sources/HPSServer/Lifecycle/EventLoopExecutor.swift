import NIOCore
import NIOPosix
import Synchronization

/// Runs Swift concurrency's tasks on NIO's event loops (the singleton group
/// that the HTTP and gRPC servers use) instead of Dispatch's pool. A request's
/// handler then runs on the thread that read the request and hands its
/// response to the same loop, instead of two hand-offs between threads per
/// request (a futex wake towards the pool, an eventfd write back to the loop).
///
/// Only for a server whose tasks never wait for I/O: a task on an event loop
/// must not block it. A Redis tier's `EventLoopFuture.wait()` traps there,
/// and a RocksDB or memory-mapped read would stall every connection of the
/// loop; `HPSServer.run` installs this only when `lookupsStayInMemory`.
/// Lookups too large to run in the request's task go to Dispatch's pool as
/// before (`LookupBatcher`).
enum EventLoopExecutor {
    private static let result = Mutex<Bool?>(nil)

    /// Makes the event loops Swift's global executor, once per process (NIO
    /// allows one installation); later calls return the first call's result.
    /// - Returns: whether the event loops run the tasks from now on.
    static func install() -> Bool {
        result.withLock { result in
            if let result { return result }
            let installed = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
            result = installed
            return installed
        }
    }
}
