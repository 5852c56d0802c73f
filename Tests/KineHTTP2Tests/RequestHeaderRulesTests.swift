import NIOCore
import NIOEmbedded
import Testing

@testable import KineHTTP2

/// Request header blocks on the wire: `:authority` takes any header value (etcdctl 3.5 sends a unix
/// socket's path there, etcd accepts it), everything else nghttp2 refused is still refused with
/// RST_STREAM(PROTOCOL_ERROR), and what nghttp2 dropped is still dropped.
@Suite("Request header rules")
struct RequestHeaderRulesTests {
    private static let grpcCall = [
        (":method", "POST"), (":scheme", "http"), (":path", "/test.Echo/Unary"), (":authority", "test"),
        ("content-type", "application/grpc"), ("te", "trailers"),
    ]

    private func request(_ stream: UInt32, _ list: [(String, String)], endStream: Bool = false) -> [UInt8] {
        let block = list.flatMap { ClientFrames.literal($0.0, $0.1) }
        return WireFrame(
            type: WireFrame.headersType, flags: WireFrame.endHeaders | (endStream ? WireFrame.endStream : 0), stream: stream, payload: block
        ).bytes
    }

    private func ok(_ stream: UInt32, _ body: [UInt8]) -> [WireFrame] {
        let responseHeaders = [(":status", "200"), ("content-type", "application/grpc")]
        return [
            WireFrame(type: WireFrame.headersType, flags: WireFrame.endHeaders, stream: stream, payload: [], headers: responseHeaders),
            WireFrame(type: WireFrame.data, flags: 0, stream: stream, payload: ClientFrames.grpcMessage(body)),
            WireFrame(
                type: WireFrame.headersType, flags: WireFrame.endHeaders | WireFrame.endStream, stream: stream, payload: [],
                headers: [("grpc-status", "0")]),
        ]
    }

    private func protocolError(_ stream: UInt32) -> [WireFrame] {
        [WireFrame(type: WireFrame.rstStream, flags: 0, stream: stream, payload: [0, 0, 0, 1])]
    }

    private func connected() throws -> ConnectionHarness {
        let harness = try ConnectionHarness(router: EchoRouter())
        _ = try harness.handshake()
        return harness
    }

    private func replacing(_ name: String, with value: String) -> [(String, String)] {
        Self.grpcCall.map { $0.0 == name ? (name, value) : $0 }
    }

    @Test("Any header value is an authority: a unix socket's path, as etcdctl 3.5 sends it, and host alone")
    func authorityTakesAnyValue() throws {
        let harness = try connected()
        for (stream, authority) in [(UInt32(1), "/run/kine/kine.sock"), (3, "kine.sock"), (5, "127.0.0.1:2379"), (7, "")] {
            #expect(
                try harness.send(
                    request(stream, replacing(":authority", with: authority)) + ClientFrames.message(stream: stream, [UInt8(stream)]))
                    == ok(stream, [UInt8(stream)]))
        }
        let hostOnly = Self.grpcCall.filter { $0.0 != ":authority" } + [("host", "/run/kine.sock")]
        #expect(try harness.send(request(9, hostOnly) + ClientFrames.message(stream: 9, [9])) == ok(9, [9]))
    }

    struct Malformed: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var fields: [Field]
        init(_ what: String, _ fields: [Field]) { (testDescription, self.fields) = (what, fields) }
    }

    struct Field: Sendable {
        var name: String
        var value: String
        init(_ name: String, _ value: String) { (self.name, self.value) = (name, value) }
    }

    private static let call: [Field] = grpcCall.map { Field($0.0, $0.1) }
    private static func without(_ name: String) -> [Field] { call.filter { $0.name != name } }
    private static func with(_ name: String, _ value: String) -> [Field] { call.map { $0.name == name ? Field(name, value) : $0 } }

    static let malformedCases: [Malformed] = [
        Malformed("upper-case name", call + [Field("X-Upper", "1")]),
        Malformed("pseudo-header after a regular one", without(":method") + [Field(":method", "POST")]),
        Malformed("unknown pseudo-header", call + [Field(":status", "200")]),
        Malformed("duplicate :path", [Field(":path", "/a")] + call),
        Malformed("no :scheme", without(":scheme")),
        Malformed("no :path", without(":path")),
        Malformed("no authority and no host", without(":authority")),
        Malformed("connection header", call + [Field("connection", "keep-alive")]),
        Malformed("transfer-encoding", call + [Field("transfer-encoding", "chunked")]),
        Malformed("te other than trailers", with("te", "gzip")),
        Malformed("two host headers", call + [Field("host", "a"), Field("host", "b")]),
        Malformed("a method with a space", with(":method", "PO ST")),
        Malformed("a scheme starting with a digit", with(":scheme", "1http")),
        Malformed("an authority with a line feed", with(":authority", "a\nb")),
    ]

    @Test("Malformed requests are reset with PROTOCOL_ERROR, and the connection goes on", arguments: malformedCases)
    func malformed(_ malformed: Malformed) throws {
        let harness = try connected()
        let list = malformed.fields.map { ($0.name, $0.value) }
        let answer = try harness.send(request(1, list) + ClientFrames.message(stream: 1, [1]))
        #expect(answer == protocolError(1), "\(answer)")
        #expect(harness.channel.isActive)
        #expect(try harness.send(request(3, Self.grpcCall) + ClientFrames.message(stream: 3, [3])) == ok(3, [3]))
    }

    @Test("A regular field with an invalid name or value is dropped and the call goes on, as nghttp2 drops it")
    func invalidRegularFieldsAreDropped() throws {
        let harness = try connected()
        for (stream, field) in [(UInt32(1), ("x-ctl", "a\u{1}b")), (3, ("x-space", " padded ")), (5, ("x@name", "v"))] {
            #expect(
                try harness.send(request(stream, Self.grpcCall + [field]) + ClientFrames.message(stream: stream, [7])) == ok(stream, [7]))
        }
    }

    @Test("Trailers from the client must end the stream and carry no pseudo-headers")
    func requestTrailers() throws {
        let harness = try connected()
        let trailers: (UInt32, [(String, String)], Bool) -> [UInt8] = { stream, list, end in
            let block = list.flatMap { ClientFrames.literal($0.0, $0.1) }
            return WireFrame(
                type: WireFrame.headersType, flags: WireFrame.endHeaders | (end ? WireFrame.endStream : 0), stream: stream, payload: block
            ).bytes
        }
        #expect(
            try harness.send(
                request(1, Self.grpcCall) + ClientFrames.message(stream: 1, [1], endStream: false) + trailers(1, [("x-t", "1")], true))
                == ok(1, [1]))
        #expect(
            try harness.send(
                request(3, Self.grpcCall) + ClientFrames.message(stream: 3, [3], endStream: false) + trailers(3, [(":path", "/x")], true))
                == protocolError(3))
        #expect(
            try harness.send(
                request(5, Self.grpcCall) + ClientFrames.message(stream: 5, [5], endStream: false) + trailers(5, [("x-t", "1")], false))
                == protocolError(5))
    }
}
