import KineHTTP2
import Logging
import ServiceLifecycle

/// The etcd gRPC server on the client address. A single node listens once its store is open (so
/// its first client is served, not refused); an HA node listens at once and answers "no leader"
/// until it knows where to serve from. Stops accepting at graceful shutdown and drains.
struct EtcdServerService: Service {
    let server: GRPCServer
    let stores: StoreHandle
    let waitForStore: Bool
    let onListening: @Sendable (GRPCListenTarget) -> Void
    let logger: Logger

    func run() async throws {
        if waitForStore {
            await stores.waitForFirstEpoch()
            if Task.isCancelled { return }
        }
        let bound: GRPCListenTarget
        do {
            bound = try await server.start()
        } catch {
            logger.error("cannot listen", metadata: ["kine.listen": "\(server.configuration.target)", "error": "\(error)"])
            throw error
        }
        onListening(bound)
        logger.info("kine ready", metadata: ["kine.listen": "\(bound)"])
        // try?: the only error is cancellation, which also means: shut down now.
        try? await gracefulShutdown()
        await server.shutdown()
    }
}
