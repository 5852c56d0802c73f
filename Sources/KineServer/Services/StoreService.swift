import KineCore
import KinePostgres
import Logging
import ServiceLifecycle

/// A single node's store: opens the database (waiting for it, as Go kine does), serves from it
/// until graceful shutdown, then stops the Writer and closes the pool.
struct StoreService: Service {
    let database: PostgresConfiguration
    let configuration: KineConfiguration
    let stores: StoreHandle
    let logger: Logger

    func run() async throws {
        let instance = try await StoreInstance.open(database, configuration: configuration, logger: logger)
        stores.install(instance.store, startRevision: 0)
        // Returns on graceful shutdown or cancellation; the etcd server has stopped by then.
        // try?: the only error is cancellation, which also means: shut down now.
        try? await gracefulShutdown()
        stores.withdraw(reason: .serverStopped, endStreams: true)
        await instance.shutdown()
    }
}

/// An HA node's controller: checks the setup (a bad one fails the start, naming the problem),
/// then probes, decides and re-points until graceful shutdown.
struct HAService: Service {
    let configuration: KineConfiguration
    let ha: HAConfiguration
    let database: PostgresConfiguration
    let stores: StoreHandle
    let identity: ServerIdentity
    let metrics: HAMetrics
    let logger: Logger

    func run() async throws {
        let controller = try await HAController.start(
            configuration: configuration, ha: ha, local: database, stores: stores, identity: identity, metrics: metrics, logger: logger)
        // `run` returns after the round in progress when asked to stop, having closed everything.
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await controller.run()
            } onGracefulShutdown: {
                controller.stop()
            }
        } onCancel: {
            controller.stop()
        }
    }
}

/// Gives freed heap back to the system (`MemoryTrimmer`) until graceful shutdown.
struct MemoryTrimService: Service {
    func run() async throws {
        await cancelWhenGracefulShutdown { await MemoryTrimmer.run() }
    }
}
