import KineTestSupport
import NIOCore
import Testing

@testable import KineHTTP2

@Suite("gRPC message framing")
struct FramingTests {
    func collect(_ chunks: [[UInt8]], max: Int = 1 << 20) throws -> [[UInt8]] {
        var deframer = GRPCMessageDeframer(maxMessageSize: max)
        var out: [[UInt8]] = []
        for chunk in chunks {
            try deframer.process(chunk) { out.append($0) }
        }
        #expect(deframer.isIdle)
        return out
    }

    @Test("single message in one buffer")
    func single() throws {
        let framed = GRPCMessageFramer.frame([1, 2, 3])
        #expect(framed == [0, 0, 0, 0, 3, 1, 2, 3])
        #expect(try collect([framed]) == [[1, 2, 3]])
    }

    @Test("several messages per buffer, including empty ones")
    func several() throws {
        let messages: [[UInt8]] = [[], [9], Array(repeating: 7, count: 300), [], [1, 2]]
        let stream = messages.flatMap(GRPCMessageFramer.frame)
        #expect(try collect([stream]) == messages)
    }

    @Test("reassembly across arbitrary splits")
    func arbitrarySplits() throws {
        var rng = SeededGenerator(seed: 42)
        for round in 0..<300 {
            let count = Int.random(in: 1...6, using: &rng)
            let messages: [[UInt8]] = (0..<count).map { _ in
                let size = Int.random(in: 0...(round % 10 == 0 ? 70_000 : 64), using: &rng)
                return (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
            }
            let stream = messages.flatMap(GRPCMessageFramer.frame)
            var chunks: [[UInt8]] = []
            var offset = 0
            while offset < stream.count {
                let size = min(stream.count - offset, Int.random(in: 1...(round % 3 == 0 ? 7 : 20_000), using: &rng))
                chunks.append(Array(stream[offset..<offset + size]))
                offset += size
            }
            #expect(try collect(chunks) == messages)
        }
    }

    @Test("byte-at-a-time")
    func byteAtATime() throws {
        let messages: [[UInt8]] = [[1, 2, 3, 4, 5, 6], [], [42]]
        let stream = messages.flatMap(GRPCMessageFramer.frame)
        #expect(try collect(stream.map { [$0] }) == messages)
    }

    @Test("oversize message is rejected from its header")
    func oversize() {
        var deframer = GRPCMessageDeframer(maxMessageSize: 10)
        #expect(throws: GRPCMessageDeframer.Failure.messageTooLarge(length: 11, limit: 10)) {
            try deframer.process([0, 0, 0, 0, 11]) { _ in }
        }
        var exact = GRPCMessageDeframer(maxMessageSize: 10)
        var got: [[UInt8]] = []
        #expect(throws: Never.self) {
            try exact.process(GRPCMessageFramer.frame(Array(repeating: 1, count: 10))) { got.append($0) }
        }
        #expect(got.count == 1)
    }

    @Test("compressed flag and invalid flag")
    func flags() {
        var deframer = GRPCMessageDeframer(maxMessageSize: 10)
        #expect(throws: GRPCMessageDeframer.Failure.compressedMessage) {
            try deframer.process([1, 0, 0, 0, 1, 5]) { _ in }
        }
        var other = GRPCMessageDeframer(maxMessageSize: 10)
        #expect(throws: GRPCMessageDeframer.Failure.invalidFlag(7)) {
            try other.process([7, 0, 0, 0, 1, 5]) { _ in }
        }
    }

    @Test("partial message leaves the deframer non-idle")
    func partial() throws {
        var deframer = GRPCMessageDeframer(maxMessageSize: 100)
        try deframer.process([0, 0, 0, 0, 4, 1, 2]) { _ in Issue.record("no message expected") }
        #expect(!deframer.isIdle)
        var header = GRPCMessageDeframer(maxMessageSize: 100)
        try header.process([0, 0]) { _ in }
        #expect(!header.isIdle)
    }
}

@Suite("grpc-timeout")
struct TimeoutTests {
    @Test(
        "parse units",
        arguments: [
            ("1H", Int64(3_600_000_000_000)), ("2M", 120_000_000_000), ("3S", 3_000_000_000), ("4m", 4_000_000),
            ("5u", 5_000), ("6n", 6), ("60000000u", 60_000_000_000), ("1800000m", 1_800_000_000_000),
            ("99999999n", 99_999_999), ("0m", 0),
        ])
    func parse(value: String, nanos: Int64) {
        #expect(GRPCTimeout.parse(value) == nanos)
    }

    @Test("reject malformed", arguments: ["", "S", "1", "123456789S", "1s", "-1S", "1.5S", "1 S", "abcS", "1SS"])
    func malformed(value: String) {
        #expect(GRPCTimeout.parse(value) == nil)
    }

    @Test("huge values clamp instead of overflowing")
    func clamp() {
        #expect(GRPCTimeout.parse("99999999H") == Int64.max)
    }

    @Test("encode like grpc-go")
    func encode() {
        #expect(GRPCTimeout.encode(.seconds(60)) == "60000000u")
        #expect(GRPCTimeout.encode(.seconds(2)) == "2000000u")
        #expect(GRPCTimeout.encode(.seconds(1800)) == "1800000m")
        #expect(GRPCTimeout.encode(.nanoseconds(5)) == "5n")
        for duration: Duration in [.milliseconds(1), .seconds(7), .seconds(86_400 * 400)] {
            let encoded = GRPCTimeout.encode(duration)
            let parsed = GRPCTimeout.parse(encoded)
            #expect(parsed != nil)
            if let parsed {
                #expect(Duration.nanoseconds(parsed) >= duration)
            }
        }
    }
}

@Suite("grpc-message percent-encoding")
struct MessageEncodingTests {
    @Test("printable ASCII passes through")
    func plain() {
        let message = "etcdserver: mvcc: required revision has been compacted"
        #expect(GRPCMessageEncoding.encode(message) == message)
    }

    @Test("percent, controls and UTF-8 are escaped with uppercase hex")
    func escapes() {
        #expect(GRPCMessageEncoding.encode("100%") == "100%25")
        #expect(GRPCMessageEncoding.encode("a\nb\tc") == "a%0Ab%09c")
        #expect(GRPCMessageEncoding.encode("héllo ✓") == "h%C3%A9llo %E2%9C%93")
        #expect(GRPCMessageEncoding.encode("\u{7F}~ ") == "%7F~ ")
    }

    @Test("decode round-trips and tolerates malformed input")
    func decode() {
        for text in ["100%", "héllo ✓\n", "", "plain", "%%%"] {
            #expect(GRPCMessageEncoding.decode(GRPCMessageEncoding.encode(text)) == text)
        }
        #expect(GRPCMessageEncoding.decode("bad %zz and %4") == "bad %zz and %4")
        #expect(GRPCMessageEncoding.decode("%41%62") == "Ab")
    }
}

@Suite("HTTP/1.1 detection")
struct HTTP1Tests {
    @Test func detect() {
        func d(_ s: String) -> HTTP1.Detection {
            var b = ByteBufferAllocator().buffer(capacity: 0)
            b.writeString(s)
            return HTTP1.detect(b.readableBytesView)
        }
        #expect(d("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") == .http2)
        #expect(d("PRI * HTTP/2") == .needMoreBytes)
        #expect(d("GET /health HTTP/1.1\r\n") == .http1)
        #expect(d("GE") == .needMoreBytes)
        #expect(d("\u{16}\u{3}\u{1}") == .garbage)
        #expect(d("PUT") == .needMoreBytes)
        #expect(d("POST / HTTP/1.1") == .http1)
    }
}
