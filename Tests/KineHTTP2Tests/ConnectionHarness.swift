import CNGHTTP2
import KineCore
import KineHTTP2
import Logging
import NIOCore
import NIOEmbedded

@testable import KineHTTP2

/// One HTTP/2 frame as it crossed the wire.
struct WireFrame: Equatable, CustomStringConvertible {
    var type: UInt8
    var flags: UInt8
    var stream: UInt32
    var payload: [UInt8]
    /// For HEADERS: the decoded header list, in order.
    var headers: [(String, String)] = []

    static let data: UInt8 = 0, headersType: UInt8 = 1, rstStream: UInt8 = 3, settings: UInt8 = 4, ping: UInt8 = 6
    static let goAway: UInt8 = 7, windowUpdate: UInt8 = 8
    static let endStream: UInt8 = 0x1, ack: UInt8 = 0x1, endHeaders: UInt8 = 0x4

    static func == (a: WireFrame, b: WireFrame) -> Bool {
        a.type == b.type && a.flags == b.flags && a.stream == b.stream && a.payload == b.payload
            && a.headers.map { "\($0.0): \($0.1)" } == b.headers.map { "\($0.0): \($0.1)" }
    }

    var description: String {
        let names = [0: "DATA", 1: "HEADERS", 3: "RST_STREAM", 4: "SETTINGS", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE"]
        let body = type == Self.headersType ? "\(headers)" : "\(payload)"
        return "\(names[Int(type)] ?? "type \(type)")(flags \(flags), stream \(stream)) \(body)"
    }

    /// The frame's bytes (a client frame to send).
    var bytes: [UInt8] {
        let n = UInt32(payload.count)
        return [
            UInt8(n >> 16), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF), type, flags,
            UInt8(stream >> 24), UInt8((stream >> 16) & 0xFF), UInt8((stream >> 8) & 0xFF), UInt8(stream & 0xFF),
        ] + payload
    }
}

/// A client's frames, built by hand (HPACK literals without indexing or Huffman).
enum ClientFrames {
    static let preface: [UInt8] =
        Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + WireFrame(type: WireFrame.settings, flags: 0, stream: 0, payload: []).bytes
    static let settingsAck = WireFrame(type: WireFrame.settings, flags: WireFrame.ack, stream: 0, payload: []).bytes

    static func literal(_ name: String, _ value: String) -> [UInt8] {
        [0x00, UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.utf8.count)] + Array(value.utf8)
    }

    static func call(stream: UInt32, path: String, timeout: String? = nil, endStream: Bool = false) -> [UInt8] {
        var block = literal(":method", "POST") + literal(":scheme", "http") + literal(":path", path) + literal(":authority", "test")
        block += literal("content-type", "application/grpc") + literal("te", "trailers")
        if let timeout { block += literal("grpc-timeout", timeout) }
        return WireFrame(
            type: WireFrame.headersType, flags: WireFrame.endHeaders | (endStream ? WireFrame.endStream : 0), stream: stream, payload: block
        ).bytes
    }

    static func message(stream: UInt32, _ body: [UInt8], endStream: Bool = true) -> [UInt8] {
        WireFrame(type: WireFrame.data, flags: endStream ? WireFrame.endStream : 0, stream: stream, payload: grpcMessage(body)).bytes
    }

    static func grpcMessage(_ body: [UInt8]) -> [UInt8] {
        let n = UInt32(body.count)
        return [0, UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)] + body
    }

    static func reset(stream: UInt32, code: UInt8 = 8) -> [UInt8] {
        WireFrame(type: WireFrame.rstStream, flags: 0, stream: stream, payload: [0, 0, 0, code]).bytes
    }

    static func goAway(lastStream: UInt32) -> [UInt8] {
        WireFrame(
            type: WireFrame.goAway, flags: 0, stream: 0,
            payload: [
                UInt8(lastStream >> 24), UInt8((lastStream >> 16) & 0xFF), UInt8((lastStream >> 8) & 0xFF), UInt8(lastStream & 0xFF), 0, 0,
                0, 0,
            ]
        ).bytes
    }
}

/// The server's connection handler in an embedded channel: bytes in, frames out, time on demand.
/// Handlers must answer without suspending (the embedded loop runs only when told).
final class ConnectionHarness {
    let channel: EmbeddedChannel
    let handler: ServerConnectionHandler
    private var received: [UInt8] = []
    private var inflater: OpaquePointer?

    init(router: any GRPCRouter, maxReceiveMessageSize: Int = 64) throws {
        let configuration = GRPCServerConfiguration(
            target: .tcp(host: "127.0.0.1", port: 0), maxReceiveMessageSize: maxReceiveMessageSize, initialStreamWindowSize: 65_535,
            initialConnectionWindowSize: 65_535, maxPendingResponseBytesPerStream: 1 << 20)
        handler = ServerConnectionHandler(
            configuration: configuration, router: router, logger: Logger(label: "kine.test", factory: { _ in SwiftLogNoOpLogHandler() }),
            registry: nil)
        channel = EmbeddedChannel(handler: handler)
        var made: OpaquePointer?
        nghttp2_hd_inflate_new(&made)
        inflater = made
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    }

    deinit {
        if let inflater { nghttp2_hd_inflate_del(inflater) }
        _ = try? channel.finish()
    }

    /// Sends client bytes and returns the frames the server wrote in answer.
    func send(_ bytes: [UInt8]) throws -> [WireFrame] {
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        try channel.writeInbound(buffer)
        return try frames()
    }

    /// Lets `duration` pass on the connection's clock (deadlines, timeouts).
    func advance(by duration: TimeAmount) throws -> [WireFrame] {
        channel.embeddedEventLoop.advanceTime(by: duration)
        return try frames()
    }

    /// The server's graceful shutdown (what `GRPCServer.shutdown` does to each connection).
    func beginGracefulShutdown(grace: TimeAmount = .seconds(5)) throws -> [WireFrame] {
        _ = handler.beginGracefulShutdown(gracePeriod: grace, eventLoop: channel.eventLoop)
        return try frames()
    }

    /// The preface and the settings exchange; returns what the server sent for them.
    func handshake() throws -> [WireFrame] {
        try send(ClientFrames.preface) + send(ClientFrames.settingsAck)
    }

    struct MalformedOutput: Error {}

    private func frames() throws -> [WireFrame] {
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { received += buffer.readableBytesView }
        var out: [WireFrame] = []
        while received.count >= 9 {
            let length = Int(received[0]) << 16 | Int(received[1]) << 8 | Int(received[2])
            guard received.count >= 9 + length else { break }
            let stream = UInt32(received[5] & 0x7F) << 24 | UInt32(received[6]) << 16 | UInt32(received[7]) << 8 | UInt32(received[8])
            var frame = WireFrame(type: received[3], flags: received[4], stream: stream, payload: Array(received[9..<9 + length]))
            if frame.type == WireFrame.headersType {
                frame.headers = try decode(frame.payload)
                frame.payload = []
            }
            out.append(frame)
            received.removeFirst(9 + length)
        }
        return out
    }

    /// HPACK-decodes a header block (END_HEADERS blocks only: the server never sends CONTINUATION
    /// for these small blocks) with the connection's dynamic table.
    private func decode(_ block: [UInt8]) throws -> [(String, String)] {
        var headers: [(String, String)] = []
        var offset = 0
        while true {
            var pair = nghttp2_nv()
            var flags: Int32 = 0
            let consumed = block.withUnsafeBufferPointer { raw in
                nghttp2_hd_inflate_hd2(inflater, &pair, &flags, raw.baseAddress.map { $0 + offset }, block.count - offset, 1)
            }
            if consumed < 0 { throw MalformedOutput() }
            offset += consumed
            if flags & Int32(NGHTTP2_HD_INFLATE_EMIT.rawValue) != 0 {
                let name = String(decoding: UnsafeBufferPointer(start: pair.name, count: pair.namelen), as: UTF8.self)
                let value = String(decoding: UnsafeBufferPointer(start: pair.value, count: pair.valuelen), as: UTF8.self)
                headers.append((name, value))
            }
            if flags & Int32(NGHTTP2_HD_INFLATE_FINAL.rawValue) != 0 {
                nghttp2_hd_inflate_end_headers(inflater)
                return headers
            }
            if consumed == 0 && flags & Int32(NGHTTP2_HD_INFLATE_EMIT.rawValue) == 0 { throw MalformedOutput() }
        }
    }
}

/// Unary methods that answer without suspending.
struct EchoRouter: GRPCRouter {
    func hasService(_ service: String) -> Bool { service == "test.Echo" }

    func method(for path: String) -> GRPCMethod? {
        switch path {
        case "/test.Echo/Unary": .unary { request, _ in request }
        case "/test.Echo/Fail": .unary { _, _ throws(GRPCStatus) in throw GRPCStatus(.failedPrecondition, "test: failed") }
        default: nil
        }
    }
}
