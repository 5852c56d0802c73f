import NIOCore

/// HTTP/1.1 on the gRPC port: one GET or HEAD (`/health`, `/version`, `/metrics`) answered by the
/// configuration's handler, then the connection closes.
extension ServerConnectionHandler {
    func processHTTP1() {
        guard let input = pendingInput else { return }
        switch HTTP1.parseHead(input.readableBytesView) {
        case .needMoreBytes:
            return
        case .tooLarge:
            pendingInput = nil
            respondHTTP1((431, "text/plain", Array("request header too large\n".utf8)), headOnly: false)
        case .invalid:
            pendingInput = nil
            respondHTTP1((400, "text/plain", Array("bad request\n".utf8)), headOnly: false)
        case .head(let head):
            pendingInput = nil
            // Anything after the head (a body, a pipelined request) is ignored: we close after answering.
            mode = .closed
            guard head.method == "GET" || head.method == "HEAD" else {
                respondHTTP1((405, "text/plain", Array("method not allowed\n".utf8)), headOnly: false)
                return
            }
            guard let handler = configuration.http1Handler, let loopBound else {
                respondHTTP1((404, "text/plain", Array("404 page not found\n".utf8)), headOnly: head.method == "HEAD")
                return
            }
            let headOnly = head.method == "HEAD"
            let path = head.target
            Task {
                let response = await handler(path)
                loopBound.eventLoop.execute {
                    loopBound.value.respondHTTP1(response, headOnly: headOnly)
                }
            }
        }
    }

    func respondHTTP1(_ response: GRPCHTTP1Response, headOnly: Bool) {
        mode = .closed
        guard let context else { return }
        var buffer = context.channel.allocator.buffer(capacity: 128 + response.body.count)
        HTTP1.render(response, headOnly: headOnly, into: &buffer)
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: promise)
        promise.futureResult.assumeIsolated().whenComplete { [weak self] _ in
            self?.closeConnection()
        }
    }
}
