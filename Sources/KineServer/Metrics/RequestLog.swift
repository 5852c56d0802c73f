import KineHTTP2
import Logging

/// Per-request logging from the server's call observer: every call at debug level (method,
/// duration, gRPC code), and a warning for a call slower than `slowThreshold`, as etcd warns
/// "apply request took too long" (its `--warning-apply-duration`, 100 ms). Watch and keep-alive
/// streams live as long as their clients: only unary calls are timed against the threshold.
struct RequestLog: GRPCServerObserver {
    let logger: Logger
    var slowThreshold: Duration = .milliseconds(100)

    func callStarted(path: String, streaming: Bool) {}

    func callHandled(path: String, streaming: Bool, code: Int, duration: Duration) {
        let slow = !streaming && duration > slowThreshold
        guard slow || logger.logLevel <= .debug else { return }
        let metadata: Logger.Metadata = [
            "grpc.method": "\(path)", "grpc.code": "\(KineMetrics.codeName(code))",
            "grpc.duration": "\(Self.milliseconds(duration))ms",
        ]
        if slow {
            var warning = metadata
            warning["grpc.expectedDuration"] = "\(Self.milliseconds(slowThreshold))ms"
            logger.warning("apply request took too long", metadata: warning)
        } else {
            logger.debug("grpc request", metadata: metadata)
        }
    }

    static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let micros = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        let fraction = String(micros % 1000)
        return "\(micros / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}

/// Several observers as one (metrics and the request log).
struct ObserverChain: GRPCServerObserver {
    let observers: [any GRPCServerObserver]

    func callStarted(path: String, streaming: Bool) {
        for observer in observers { observer.callStarted(path: path, streaming: streaming) }
    }

    func callHandled(path: String, streaming: Bool, code: Int, duration: Duration) {
        for observer in observers { observer.callHandled(path: path, streaming: streaming, code: code, duration: duration) }
    }
}
