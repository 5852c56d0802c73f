import KineTestSupport
import NIOCore
import Testing

@testable import KineHTTP2

@Suite("robustness against malformed input")
struct RobustnessTests {
    static func frame(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8]) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
            + [UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)]
            + payload
    }

    /// A valid request HEADERS block (HPACK, literal without indexing) for `/test.Echo/Unary`.
    static func requestHeaders(stream: UInt32, endStream: Bool, path: String = "/test.Echo/Unary") -> [UInt8] {
        func literal(_ name: String, _ value: String) -> [UInt8] {
            [0x00, UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.utf8.count)] + Array(value.utf8)
        }
        let block =
            literal(":method", "POST") + literal(":scheme", "http") + literal(":path", path)
            + literal(":authority", "localhost") + literal("content-type", "application/grpc") + literal("te", "trailers")
        return frame(type: 1, flags: 0x4 | (endStream ? 0x1 : 0), stream: stream, payload: block)
    }

    static let emptySettings = frame(type: 4, flags: 0, stream: 0, payload: [])

    func randomBytes(_ count: Int, _ rng: inout SeededGenerator) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    func makeCase(_ index: Int, _ rng: inout SeededGenerator) -> [UInt8] {
        let preface = HTTP1.http2Preface
        switch index % 8 {
        case 0:
            // Pure random bytes.
            return randomBytes(Int.random(in: 1...512, using: &rng), &rng)
        case 1:
            // Truncated preface / valid prefix of a good exchange.
            let good =
                preface + Self.emptySettings + Self.requestHeaders(stream: 1, endStream: false)
                + Self.frame(type: 0, flags: 1, stream: 1, payload: GRPCMessageFramer.frame([1, 2, 3]))
            return Array(good.prefix(Int.random(in: 1..<good.count, using: &rng)))
        case 2:
            // Valid preface followed by garbage.
            return preface + randomBytes(Int.random(in: 1...300, using: &rng), &rng)
        case 3:
            // Preface, SETTINGS, then random well-formed-looking frames of random types.
            var bytes = preface + Self.emptySettings
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let type = UInt8.random(in: 0...12, using: &rng)
                let flags = UInt8.random(in: 0...255, using: &rng)
                let stream = UInt32.random(in: 0...7, using: &rng)
                bytes += Self.frame(
                    type: type, flags: flags, stream: stream, payload: randomBytes(Int.random(in: 0...40, using: &rng), &rng))
            }
            return bytes
        case 4:
            // Valid request headers, then garbage gRPC framing in DATA (bad flags, huge lengths, truncation).
            var message = randomBytes(Int.random(in: 0...40, using: &rng), &rng)
            if Bool.random(using: &rng), message.count >= 5 { message[0] = UInt8.random(in: 0...3, using: &rng) }
            return preface + Self.emptySettings + Self.requestHeaders(stream: 1, endStream: false)
                + Self.frame(type: 0, flags: UInt8.random(in: 0...1, using: &rng), stream: 1, payload: message)
        case 5:
            // Mutate one byte of a valid exchange.
            var good =
                preface + Self.emptySettings + Self.requestHeaders(stream: 1, endStream: false)
                + Self.frame(type: 0, flags: 1, stream: 1, payload: GRPCMessageFramer.frame([9, 9, 9]))
            let position = Int.random(in: preface.count..<good.count, using: &rng)
            good[position] = UInt8.random(in: 0...255, using: &rng)
            return good
        case 6:
            // Random HPACK block in a HEADERS frame.
            return preface + Self.emptySettings
                + Self.frame(type: 1, flags: 0x5, stream: 1, payload: randomBytes(Int.random(in: 0...60, using: &rng), &rng))
        default:
            // HTTP/1-looking garbage.
            let methods = ["GET", "POST", "PRI", "G", "HEAD"]
            let method = methods[Int.random(in: 0..<methods.count, using: &rng)]
            return Array("\(method) ".utf8) + randomBytes(Int.random(in: 0...100, using: &rng), &rng)
                + (Bool.random(using: &rng) ? Array("\r\n\r\n".utf8) : [])
        }
    }

    @Test("random bytes, truncated frames and garbage after the preface never take the server down")
    func fuzz() async throws {
        try await withServer { _, port, _ in
            var rng = SeededGenerator(seed: 0xC0FFEE)
            let cases = (0..<320).map { makeCase($0, &rng) }
            // Run in small concurrent batches to keep the test quick.
            for batch in stride(from: 0, to: cases.count, by: 16) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for bytes in cases[batch..<min(batch + 16, cases.count)] {
                        group.addTask {
                            _ = try await rawExchange(port: port, bytes: bytes, readTimeout: .milliseconds(50))
                        }
                    }
                    try await group.waitForAll()
                }
            }
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: port)
            #expect(try await client.unary(path: "/test.Echo/Unary", request: [4, 2]) == [4, 2])
            await client.close()
        }
    }

    @Test("garbage frames after the preface: server answers GOAWAY and closes")
    func garbageClosesConnection() async throws {
        try await withServer { _, port, _ in
            let garbage = HTTP1.http2Preface + Self.frame(type: 0, flags: 0, stream: 0, payload: [1, 2, 3])
            let (reply, closed) = try await rawExchange(port: port, bytes: garbage, readTimeout: .seconds(5))
            #expect(closed)
            // Somewhere in the reply there is a GOAWAY frame (type 7).
            var offset = 0
            var types: [UInt8] = []
            while offset + 9 <= reply.count {
                let length = Int(reply[offset]) << 16 | Int(reply[offset + 1]) << 8 | Int(reply[offset + 2])
                types.append(reply[offset + 3])
                offset += 9 + length
            }
            #expect(types.first == 4)
            #expect(types.contains(7))
        }
    }

    @Test("a valid raw request gets a response; garbage DATA on one stream only fails that stream")
    func rawRequest() async throws {
        try await withServer { _, port, _ in
            let bytes =
                HTTP1.http2Preface + Self.emptySettings
                + Self.requestHeaders(stream: 1, endStream: false)
                + Self.frame(type: 0, flags: 0, stream: 1, payload: [1, 0, 0, 0, 1, 0])  // compressed flag
                + Self.requestHeaders(stream: 3, endStream: false)
                + Self.frame(type: 0, flags: 1, stream: 3, payload: GRPCMessageFramer.frame([5, 6]))
            let (reply, _) = try await rawExchange(port: port, bytes: bytes, readTimeout: .milliseconds(500))
            // Find DATA on stream 3 carrying the echoed message.
            var offset = 0
            var echoed = false
            var streams1: [UInt8] = []
            while offset + 9 <= reply.count {
                let length = Int(reply[offset]) << 16 | Int(reply[offset + 1]) << 8 | Int(reply[offset + 2])
                let type = reply[offset + 3]
                let stream = Int(reply[offset + 8])
                let payload = Array(reply[(offset + 9)..<min(offset + 9 + length, reply.count)])
                if type == 0, stream == 3, payload == GRPCMessageFramer.frame([5, 6]) { echoed = true }
                if stream == 1 { streams1.append(type) }
                offset += 9 + length
            }
            #expect(echoed)
            // Stream 1: Trailers-Only HEADERS then RST_STREAM(NO_ERROR) (client had not half-closed).
            #expect(streams1 == [1, 3])
        }
    }
}
