import Logging
import NIOCore
import NIOSSL

/// Logs a refused TLS handshake (no client certificate, one from another CA) with the peer's
/// address, then lets the connection close as NIOSSL closes it.
final class TLSHandshakeLogger: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is NIOSSLError || error is BoringSSLError {
            logger.warning(
                "TLS handshake refused",
                metadata: [
                    "tls.remote": "\(context.remoteAddress.map { "\($0)" } ?? "unknown")", "error": "\(error)",
                ])
        }
        context.fireErrorCaught(error)
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// The server side of TLS before the connection handler.
    func addServerTLS(_ context: NIOSSLContext, logger: Logger) throws {
        try addHandler(NIOSSLServerHandler(context: context))
        try addHandler(TLSHandshakeLogger(logger: logger))
    }

    func addClientTLS(_ context: NIOSSLContext, serverHostname: String?) throws {
        try addHandler(try NIOSSLClientHandler(context: context, serverHostname: serverHostname))
    }
}
