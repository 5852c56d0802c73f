import NIOCore
import NIOEmbedded
import Testing

@testable import KineHTTP2

@Suite("HTTP/1.1 connection lifetime")
struct HTTP1ConnectionLifetimeTests {
    /// The fuzzer's leak sanitizer found each HTTP/1.1 connection holding itself (through a stored
    /// loop-bound reference) and so never freed: it and its channel handler must be gone once the
    /// channel closes, whether the client or the server closed it.
    @Test(
        "An HTTP/1.1 connection and its handler are freed when the channel closes",
        arguments: [
            "",  // the client goes away mid-request
            "/health HTTP/1.1\r\nHost: x\r\n\r\n",
            "/v3/kv/range HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
            "/ HTTP/1.1\r\nno colon here\r\n\r\n",
            "/ HTTP/1.1\r\nConnection: close\r\n\r\n",
        ])
    func freedAfterClose(rest: String) throws {
        weak var connection: HTTP1ServerConnection?
        weak var handler: ServerConnectionHandler?
        do {
            let harness = try ConnectionHarness(router: EchoRouter())
            handler = harness.handler
            try send("GET ", to: harness)
            connection = harness.handler.http1Connection
            #expect(connection != nil)
            try send(rest, to: harness)
            while try harness.channel.readOutbound(as: ByteBuffer.self) != nil {}
            _ = try? harness.channel.finish()
            // An embedded channel closed by its handler removes the handlers in a loop task.
            harness.channel.embeddedEventLoop.run()
        }
        #expect(connection == nil)
        #expect(handler == nil)
    }

    private func send(_ text: String, to harness: ConnectionHarness) throws {
        guard !text.isEmpty, harness.channel.isActive else { return }
        var buffer = harness.channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        try harness.channel.writeInbound(buffer)
    }
}
