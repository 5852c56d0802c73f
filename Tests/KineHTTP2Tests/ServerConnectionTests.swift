import NIOCore
import NIOEmbedded
import Testing

@testable import KineHTTP2

/// The server connection end to end in an embedded channel, no sockets: the exact frames a
/// client gets for each shape of call, for resets, deadlines, GOAWAY and protocol errors.
@Suite("Server connection: frames on the wire")
struct ServerConnectionTests {
    private func headers(_ stream: UInt32, endStream: Bool, _ list: [(String, String)]) -> WireFrame {
        WireFrame(
            type: WireFrame.headersType, flags: WireFrame.endHeaders | (endStream ? WireFrame.endStream : 0), stream: stream, payload: [],
            headers: list)
    }

    private let responseHeaders = [(":status", "200"), ("content-type", "application/grpc")]

    private func trailersOnly(_ stream: UInt32, status: Int, _ message: String) -> WireFrame {
        headers(stream, endStream: true, responseHeaders + [("grpc-status", "\(status)"), ("grpc-message", message)])
    }

    private func data(_ stream: UInt32, _ body: [UInt8]) -> WireFrame {
        WireFrame(type: WireFrame.data, flags: 0, stream: stream, payload: ClientFrames.grpcMessage(body))
    }

    private func ok(_ stream: UInt32, _ body: [UInt8]) -> [WireFrame] {
        [headers(stream, endStream: false, responseHeaders), data(stream, body), headers(stream, endStream: true, [("grpc-status", "0")])]
    }

    private func connected() throws -> ConnectionHarness {
        let harness = try ConnectionHarness(router: EchoRouter())
        _ = try harness.handshake()
        return harness
    }

    @Test("The server speaks first with its SETTINGS, then acknowledges the client's")
    func handshake() throws {
        let harness = try ConnectionHarness(router: EchoRouter())
        let settings: [UInt8] = [0, 3, 255, 255, 255, 255, 0, 4, 0, 0, 255, 255, 0, 2, 0, 0, 0, 0]
        #expect(
            try harness.handshake() == [
                WireFrame(type: WireFrame.settings, flags: 0, stream: 0, payload: settings),
                WireFrame(type: WireFrame.settings, flags: WireFrame.ack, stream: 0, payload: []),
            ])
    }

    @Test("A unary call: response headers, one message, trailers with status 0")
    func unary() throws {
        let harness = try connected()
        #expect(
            try harness.send(ClientFrames.call(stream: 1, path: "/test.Echo/Unary") + ClientFrames.message(stream: 1, [1, 2, 3]))
                == ok(1, [1, 2, 3]))
        // Calls go on on the same connection.
        #expect(try harness.send(ClientFrames.call(stream: 3, path: "/test.Echo/Unary") + ClientFrames.message(stream: 3, [])) == ok(3, []))
    }

    @Test("Failures before any response are trailers-only, with grpc-go's messages")
    func trailersOnlyFailures() throws {
        let harness = try connected()
        #expect(
            try harness.send(ClientFrames.call(stream: 1, path: "/test.Echo/Fail") + ClientFrames.message(stream: 1, []))
                == [trailersOnly(1, status: 9, "test: failed")])
        #expect(
            try harness.send(ClientFrames.call(stream: 3, path: "/no.Such/Method", endStream: true))
                == [trailersOnly(3, status: 12, "unknown service no.Such")])
        #expect(
            try harness.send(ClientFrames.call(stream: 5, path: "/test.Echo/Nope", endStream: true))
                == [trailersOnly(5, status: 12, "unknown method Nope for service test.Echo")])
        #expect(
            try harness.send(
                ClientFrames.call(stream: 7, path: "/test.Echo/Unary") + ClientFrames.message(stream: 7, [UInt8](repeating: 1, count: 100)))
                == [trailersOnly(7, status: 8, "grpc: received message larger than max (100 vs. 64)")])
        #expect(
            try harness.send(ClientFrames.call(stream: 9, path: "/test.Echo/Unary", timeout: "abc") + ClientFrames.message(stream: 9, [7]))
                == [trailersOnly(9, status: 13, "malformed grpc-timeout: abc")])
        #expect(
            try harness.send(
                ClientFrames.call(stream: 11, path: "/test.Echo/Unary") + ClientFrames.message(stream: 11, [1], endStream: false)
                    + ClientFrames.message(stream: 11, [2]))
                == [trailersOnly(11, status: 13, "grpc: received more than one request message for unary call")])
    }

    @Test("A deadline that passes while the request is incomplete ends the call with status 4 and RST_STREAM(NO_ERROR)")
    func deadline() throws {
        let harness = try connected()
        #expect(
            try harness.send(
                ClientFrames.call(stream: 1, path: "/test.Echo/Unary", timeout: "100m")
                    + ClientFrames.message(stream: 1, [1], endStream: false)
            ).isEmpty)
        #expect(try harness.advance(by: .milliseconds(99)).isEmpty)
        #expect(
            try harness.advance(by: .milliseconds(2)) == [
                trailersOnly(1, status: 4, "context deadline exceeded"),
                WireFrame(type: WireFrame.rstStream, flags: 0, stream: 1, payload: [0, 0, 0, 0]),
            ])
    }

    @Test("A call the client resets gets nothing more, its deadline is dropped, and the connection goes on")
    func clientReset() throws {
        let harness = try connected()
        #expect(
            try harness.send(
                ClientFrames.call(stream: 1, path: "/test.Echo/Unary", timeout: "1S")
                    + ClientFrames.message(stream: 1, [1], endStream: false)
            ).isEmpty)
        #expect(try harness.send(ClientFrames.reset(stream: 1)).isEmpty)
        #expect(try harness.advance(by: .seconds(2)).isEmpty)
        #expect(
            try harness.send(ClientFrames.call(stream: 3, path: "/test.Echo/Unary") + ClientFrames.message(stream: 3, [9])) == ok(3, [9]))
    }

    @Test(
        "Graceful shutdown: GOAWAY names the last stream, the call in flight completes, later streams are ignored, then the connection closes"
    )
    func gracefulShutdown() throws {
        let harness = try connected()
        #expect(try harness.send(ClientFrames.call(stream: 1, path: "/test.Echo/Unary")).isEmpty)
        #expect(
            try harness.beginGracefulShutdown() == [
                WireFrame(type: WireFrame.goAway, flags: 0, stream: 0, payload: [0, 0, 0, 1, 0, 0, 0, 0])
            ])
        #expect(harness.channel.isActive)
        // Opened after the GOAWAY: never runs (RFC 9113 §6.8).
        #expect(try harness.send(ClientFrames.call(stream: 3, path: "/test.Echo/Unary") + ClientFrames.message(stream: 3, [3])).isEmpty)
        #expect(try harness.send(ClientFrames.message(stream: 1, [5])) == ok(1, [5]))
        #expect(!harness.channel.isActive)
    }

    @Test("Graceful shutdown of an idle connection sends GOAWAY(0) and closes at once")
    func idleShutdown() throws {
        let harness = try connected()
        #expect(
            try harness.beginGracefulShutdown() == [
                WireFrame(type: WireFrame.goAway, flags: 0, stream: 0, payload: [0, 0, 0, 0, 0, 0, 0, 0])
            ])
        #expect(!harness.channel.isActive)
    }

    @Test("A call still open when the grace period ends is cut off with the connection")
    func graceExpires() throws {
        let harness = try connected()
        _ = try harness.send(ClientFrames.call(stream: 1, path: "/test.Echo/Unary"))
        _ = try harness.beginGracefulShutdown(grace: .seconds(1))
        #expect(try harness.advance(by: .milliseconds(900)).isEmpty)
        #expect(harness.channel.isActive)
        _ = try harness.advance(by: .milliseconds(200))
        #expect(!harness.channel.isActive)
    }

    @Test("A protocol error ends the connection with GOAWAY(PROTOCOL_ERROR) and nghttp2's reason")
    func protocolError() throws {
        let harness = try connected()
        let frames = try harness.send(WireFrame(type: WireFrame.headersType, flags: 5, stream: 0, payload: [0x82]).bytes)
        #expect(
            frames == [
                WireFrame(
                    type: WireFrame.goAway, flags: 0, stream: 0,
                    payload: [0, 0, 0, 0, 0, 0, 0, 1] + Array("request HEADERS: stream_id == 0".utf8))
            ])
        #expect(!harness.channel.isActive)
    }

    @Test("HEADERS on a stream id below one already used never runs a call (nghttp2 takes it for a closed stream); the connection goes on")
    func decreasingStreamID() throws {
        let harness = try connected()
        #expect(
            try harness.send(ClientFrames.call(stream: 5, path: "/test.Echo/Unary") + ClientFrames.message(stream: 5, [1])) == ok(5, [1]))
        #expect(try harness.send(ClientFrames.call(stream: 3, path: "/test.Echo/Unary") + ClientFrames.message(stream: 3, [2])).isEmpty)
        #expect(harness.channel.isActive)
        #expect(
            try harness.send(ClientFrames.call(stream: 7, path: "/test.Echo/Unary") + ClientFrames.message(stream: 7, [3])) == ok(7, [3]))
    }
}
