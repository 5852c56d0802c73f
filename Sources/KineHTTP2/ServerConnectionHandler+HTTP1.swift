import NIOCore

/// HTTP/1.1 on the gRPC port: the connection hands its bytes to an `HTTP1ServerConnection`, which
/// reads requests and runs the configuration's handler for each.
extension ServerConnectionHandler {
    func startHTTP1() {
        mode = .http1
        guard let context else { return }
        let eventLoop = context.eventLoop
        let connection = HTTP1ServerConnection(
            handler: configuration.http1Handler, eventLoop: context.eventLoop, allocator: context.channel.allocator,
            remoteAddress: remoteAddress, logger: logger,
            write: { [weak self] buffer in
                guard let self, let context = self.context else {
                    return eventLoop.makeFailedFuture(HTTP1ConnectionClosed())
                }
                return context.writeAndFlush(self.wrapOutboundOut(buffer))
            },
            close: { [weak self] in self?.closeConnection() })
        http1Connection = connection
        if let input = pendingInput {
            pendingInput = nil
            connection.receive(input.readableBytesView)
        }
    }
}
