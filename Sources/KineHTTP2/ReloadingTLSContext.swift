import Logging
import NIOSSL
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A server's TLS context that follows its files: each new connection gets a context made from
/// the files as they are now (etcd serves rotated certificates without a restart). A change is
/// noticed by a file's modification time, size or inode; files that do not load (a rotation
/// half-written) keep the previous context, and the failure is logged once per change.
final class ReloadingTLSContext: Sendable {
    private struct Loaded {
        var context: NIOSSLContext
        var stamps: [FileStamp]
        /// The stamps of files that failed to load, so a bad state is reported once.
        var failedStamps: [FileStamp]?
    }

    private let configuration: GRPCTLSConfiguration
    private let logger: Logger
    private let loaded: Mutex<Loaded>

    init(_ configuration: GRPCTLSConfiguration, logger: Logger) throws(GRPCTLSError) {
        self.configuration = configuration
        self.logger = logger
        let stamps = Self.stamps(configuration)
        loaded = Mutex(Loaded(context: try configuration.serverContext(), stamps: stamps))
    }

    /// The context for a connection being accepted now.
    func current() -> NIOSSLContext {
        let now = Self.stamps(configuration)
        let (context, stale) = loaded.withLock { state in (state.context, state.stamps != now && state.failedStamps != now) }
        guard stale else { return context }
        do {
            let fresh = try configuration.serverContext()
            loaded.withLock { $0 = Loaded(context: fresh, stamps: now) }
            logger.notice("TLS certificate reloaded", metadata: ["tls.certFile": "\(configuration.certificateChainFile)"])
            return fresh
        } catch {
            loaded.withLock { $0.failedStamps = now }
            logger.error("TLS files changed but do not load; serving the previous certificate", metadata: ["error": "\(error)"])
            return context
        }
    }

    private static func stamps(_ configuration: GRPCTLSConfiguration) -> [FileStamp] {
        ([configuration.certificateChainFile, configuration.privateKeyFile] + (configuration.trustedCAFile.map { [$0] } ?? []))
            .map(FileStamp.init(path:))
    }
}

/// What identifies a file's content cheaply (one stat).
struct FileStamp: Equatable, Sendable {
    var inode: UInt64 = 0
    var size: Int64 = -1
    var modifiedSeconds: Int = 0
    var modifiedNanoseconds: Int = 0

    init(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return }
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modifiedSeconds = Int(info.st_mtim.tv_sec)
        modifiedNanoseconds = Int(info.st_mtim.tv_nsec)
    }
}
