import KineHTTP2
import Logging
import ServiceLifecycle

/// Go kine's `--metrics-bind-address` listener: `/metrics` (HTTP/1.1) on its own port. A port
/// that cannot be bound is logged and left out: the client port's `/metrics` still answers, and
/// a metrics port must not keep the datastore from serving (several kines on one machine all
/// default to :8080).
struct MetricsServerService: Service {
    let server: GRPCServer
    let logger: Logger

    func run() async throws {
        do {
            let bound = try await server.start()
            logger.info("metrics listening", metadata: ["kine.metrics.listen": "\(bound)"])
        } catch {
            logger.warning(
                "cannot listen for metrics; /metrics stays on the client port",
                metadata: [
                    "kine.metrics.listen": "\(server.configuration.target)", "error": "\(error)",
                ])
            // Returning would end the whole ServiceGroup (a service that stops early stops the
            // process): wait for the shutdown like the others.
            // try?: the only error is cancellation, which also means: shut down now.
            try? await gracefulShutdown()
            return
        }
        // try?: the only error is cancellation, which also means: shut down now.
        try? await gracefulShutdown()
        await server.shutdown()
    }
}
