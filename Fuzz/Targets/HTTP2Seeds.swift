/// Well-formed client traffic for the HTTP/2 fuzzer to start from (libFuzzer mutates these;
/// the unit tests corrupt them): HEADERS in HPACK literals (no Huffman, no indexing) and DATA.
public enum HTTP2Seeds {
    static func frame(type: UInt8, flags: UInt8, stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
        let n = UInt32(payload.count)
        return [
            UInt8(n >> 16), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF), type, flags,
            UInt8(stream >> 24), UInt8((stream >> 16) & 0xFF), UInt8((stream >> 8) & 0xFF), UInt8(stream & 0xFF),
        ] + payload
    }

    static func literal(_ name: String, _ value: String) -> [UInt8] {
        [0x00, UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.utf8.count)] + Array(value.utf8)
    }

    /// HEADERS (END_HEADERS, END_STREAM when `endStream`) for a gRPC call to `path`.
    public static func headers(stream: UInt32, path: String, timeout: String? = nil, endStream: Bool = false) -> [UInt8] {
        var block = literal(":method", "POST") + literal(":scheme", "http") + literal(":path", path) + literal(":authority", "fuzz")
        block += literal("content-type", "application/grpc") + literal("te", "trailers")
        if let timeout { block += literal("grpc-timeout", timeout) }
        return frame(type: 1, flags: 0x4 | (endStream ? 0x1 : 0), stream: stream, block)
    }

    /// DATA carrying one gRPC message (END_STREAM when `endStream`).
    public static func message(stream: UInt32, _ body: [UInt8], endStream: Bool = true) -> [UInt8] {
        let n = UInt32(body.count)
        let payload = [0, UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)] + body
        return frame(type: 0, flags: endStream ? 0x1 : 0, stream: stream, payload)
    }

    /// RST_STREAM(CANCEL).
    public static func reset(stream: UInt32) -> [UInt8] { frame(type: 3, flags: 0, stream: stream, [0, 0, 0, 8]) }

    /// GOAWAY(NO_ERROR).
    public static let goAway = frame(type: 7, flags: 0, stream: 0, [0, 0, 0, 0, 0, 0, 0, 0])

    /// Inputs for `FuzzTargets.http2Server` (first byte 0: after the preface): unary calls that
    /// succeed, fail, time out, send too much, are reset, and a GOAWAY among them.
    public static let inputs: [[UInt8]] = [
        [0] + headers(stream: 1, path: "/fuzz.Echo/Unary") + message(stream: 1, [1, 2, 3]),
        [0] + headers(stream: 1, path: "/fuzz.Echo/Fail") + message(stream: 1, []),
        [0] + headers(stream: 1, path: "/fuzz.Echo/Big") + message(stream: 1, [9]),
        [0] + headers(stream: 1, path: "/fuzz.Echo/Unary", timeout: "1m") + message(stream: 1, [1], endStream: false),
        [0] + headers(stream: 1, path: "/fuzz.Echo/Unary") + message(stream: 1, [UInt8](repeating: 1, count: 100)),
        [0] + headers(stream: 1, path: "/fuzz.Echo/Unary") + reset(stream: 1)
            + headers(stream: 3, path: "/no.Such/Method", endStream: true),
        [0] + headers(stream: 1, path: "/fuzz.Echo/Unary") + goAway + message(stream: 1, [5])
            + headers(stream: 3, path: "/fuzz.Echo/Unary"),
        [6] + headers(stream: 1, path: "/fuzz.Echo/Unary") + message(stream: 1, [1], endStream: false) + message(stream: 1, [2]),
        [1] + Array("GET /health HTTP/1.1\r\nHost: x\r\n\r\n".utf8),
    ]
}
