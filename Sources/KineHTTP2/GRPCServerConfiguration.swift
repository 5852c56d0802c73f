/// Where a server listens (or a client connects).
public enum GRPCListenTarget: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unixSocket(path: String)

    public var description: String {
        switch self {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unixSocket(let path): return "unix://\(path)"
        }
    }

    /// The TCP port, if any.
    public var port: Int? {
        if case .tcp(_, let port) = self { return port }
        return nil
    }
}

/// A complete HTTP/1.1 answer: status code, content type and body.
public typealias GRPCHTTP1Response = (status: Int, contentType: String, body: [UInt8])

/// An HTTP/1.1 handler that answers `GET` and `HEAD` by path with a complete response, and other
/// methods with 405.
public func simpleHTTP1Handler(_ respond: @escaping @Sendable (_ path: String) async -> GRPCHTTP1Response) -> HTTP1Handler {
    { request, writer in
        guard request.head.method == "GET" || request.head.method == "HEAD" else {
            await writer.respond(HTTP1Response(status: 405, contentType: "text/plain", body: Array("method not allowed\n".utf8)))
            return
        }
        await writer.respond(HTTP1Response(await respond(request.head.target)))
    }
}

public struct GRPCServerConfiguration: Sendable {
    /// Where to listen. Port 0 picks a free port (see `GRPCServer.start()`'s result).
    public var target: GRPCListenTarget
    /// Largest request message accepted; larger → RESOURCE_EXHAUSTED. etcd: 1.5 MiB + 512 KiB.
    public var maxReceiveMessageSize: Int
    /// SETTINGS_INITIAL_WINDOW_SIZE we advertise (per-stream receive window).
    public var initialStreamWindowSize: Int
    /// Connection-level receive window (raised with a WINDOW_UPDATE right after SETTINGS).
    public var initialConnectionWindowSize: Int
    /// Bytes a stream may have queued unsent before `GRPCResponseWriter.write` suspends.
    public var maxPendingResponseBytesPerStream: Int
    /// How long `shutdown()` lets in-flight unary calls run before closing connections.
    public var shutdownGracePeriod: Duration
    /// Serves HTTP/1.1 requests (`GET /health`, `/version`, `/metrics`, the JSON gateway) on the
    /// same port. `nil` → 404 for every HTTP/1.1 request.
    public var http1Handler: HTTP1Handler?
    /// TLS on the port (`nil`: plain h2c). With a trusted CA, client certificates are required.
    public var tls: GRPCTLSConfiguration?
    /// Metrics of every call (`nil`: none).
    public var observer: (any GRPCServerObserver)?

    public static let defaultMaxReceiveMessageSize = 1_572_864 + 524_288

    public init(
        target: GRPCListenTarget,
        maxReceiveMessageSize: Int = GRPCServerConfiguration.defaultMaxReceiveMessageSize,
        initialStreamWindowSize: Int = 4 << 20,
        initialConnectionWindowSize: Int = 16 << 20,
        maxPendingResponseBytesPerStream: Int = 1 << 20,
        shutdownGracePeriod: Duration = .seconds(5),
        http1Handler: HTTP1Handler? = nil,
        tls: GRPCTLSConfiguration? = nil,
        observer: (any GRPCServerObserver)? = nil
    ) {
        self.tls = tls
        self.observer = observer
        self.target = target
        self.maxReceiveMessageSize = maxReceiveMessageSize
        self.initialStreamWindowSize = initialStreamWindowSize
        self.initialConnectionWindowSize = initialConnectionWindowSize
        self.maxPendingResponseBytesPerStream = maxPendingResponseBytesPerStream
        self.shutdownGracePeriod = shutdownGracePeriod
        self.http1Handler = http1Handler
    }

    /// Clamped to what HTTP/2 allows (2^31-1).
    var streamWindow: UInt32 { UInt32(clamping: min(max(initialStreamWindowSize, 65_535), Int(Int32.max))) }
    var connectionWindow: Int32 { Int32(clamping: min(max(initialConnectionWindowSize, 65_535), Int(Int32.max))) }
}
