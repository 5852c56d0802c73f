import KineCore
import KineHTTP2
import KineProto
import NIOCore
import NIOEmbedded

/// The properties the fuzzers check, one function per target. Each takes one input and returns a
/// finding (what went wrong) or nil; the libFuzzer executables trap on a finding, the unit tests
/// expect none over seeded inputs, and a crash is a finding by itself.
public enum FuzzTargets {
    // MARK: gRPC deframer

    /// The deframer fed `input` (after its first byte, which picks the chunk sizes and the size
    /// limit) must give the same messages and the same error however the bytes are split; every
    /// message is within the limit; and when it ends idle without error, framing the messages
    /// again gives back exactly the input.
    public static func deframer(_ input: [UInt8]) -> String? {
        guard let control = input.first else { return nil }
        let bytes = Array(input.dropFirst())
        let limit = [0, 1, 16, 300, 1 << 20][Int(control & 0x07) % 5]
        let whole = deframe(bytes, chunks: [bytes.count], limit: limit)
        var sizes: [Int] = []
        var seed = UInt32(control) | 1
        var covered = 0
        while covered < bytes.count {
            seed = seed &* 1_103_515_245 &+ 12345
            let size = Int(seed >> 16) % 9
            sizes.append(size)
            covered += size
        }
        let split = deframe(bytes, chunks: sizes, limit: limit)
        guard whole.messages == split.messages, whole.failure == split.failure, whole.idle == split.idle else {
            return "chunking changed the outcome: \(whole) vs \(split)"
        }
        if let big = whole.messages.first(where: { $0.count > limit }) {
            return "a \(big.count)-byte message passed the \(limit)-byte limit"
        }
        if whole.failure == nil, whole.idle {
            let framed = whole.messages.flatMap { message -> [UInt8] in
                let n = UInt32(message.count)
                return [0, UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)] + message
            }
            if framed != bytes { return "re-framing \(whole.messages.count) messages did not give the input back" }
        }
        return nil
    }

    private struct Deframed: Equatable {
        var messages: [[UInt8]] = []
        var failure: GRPCMessageDeframer.Failure?
        var idle = true
    }

    private static func deframe(_ bytes: [UInt8], chunks: [Int], limit: Int) -> Deframed {
        var deframer = GRPCMessageDeframer(maxMessageSize: limit)
        var out = Deframed()
        var offset = 0
        for size in chunks where offset < bytes.count {
            let end = min(bytes.count, offset + size)
            do throws(GRPCMessageDeframer.Failure) {
                try deframer.process(Array(bytes[offset..<end])) { out.messages.append($0) }
            } catch {
                out.failure = error
                break
            }
            offset = end
        }
        out.idle = deframer.isIdle
        return out
    }

    // MARK: HTTP/2 server connection

    /// The client connection preface and an empty SETTINGS frame.
    static let preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]

    /// The server's connection handler fed `input` as the bytes a client sent (after the first
    /// byte: odd → the bytes as they are, even → after a valid preface, so the fuzzer works on
    /// frames; its other bits say how the bytes are split into reads), then its timers run out (deadlines,
    /// the detection timeout) and the connection closes. It must not crash, and a connection that
    /// got a valid preface must answer with SETTINGS first.
    public static func http2Server(_ input: [UInt8]) -> String? {
        guard let control = input.first else { return nil }
        let output: [UInt8]
        do {
            output = try serve(input)
        } catch {
            return "embedded connect failed: \(error)"
        }
        if control & 1 == 0, output.count >= 9, output[3] != 4 { return "the server's first frame is of type \(output[3]), not SETTINGS" }
        return nil
    }

    /// What the server connection wrote back for `input` (as `http2Server` reads it).
    public static func serve(_ input: [UInt8]) throws -> [UInt8] {
        guard let control = input.first else { return [] }
        let bytes = (control & 1 == 0 ? preface : []) + input.dropFirst()
        let configuration = GRPCServerConfiguration(
            target: .tcp(host: "127.0.0.1", port: 0), maxReceiveMessageSize: 64, initialStreamWindowSize: 65_535,
            initialConnectionWindowSize: 65_535, maxPendingResponseBytesPerStream: 256)
        let channel = EmbeddedChannel(handler: ServerConnectionFuzzing.handler(configuration: configuration, router: FuzzRouter()))
        var output: [UInt8] = []
        func drain() {
            while let buffer = try? channel.readOutbound(as: ByteBuffer.self) { output += buffer.readableBytesView }
        }
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        // Reads of the whole input at once, or (other values of the control byte) of a few bytes.
        let read = control >> 1 == 0 ? max(1, bytes.count) : Int(control >> 1) * 3
        var offset = 0
        while offset < bytes.count, channel.isActive {
            var buffer = channel.allocator.buffer(capacity: read)
            buffer.writeBytes(bytes[offset..<min(bytes.count, offset + read)])
            offset += read
            _ = try? channel.writeInbound(buffer)
            drain()
        }
        channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        drain()
        _ = try? channel.finish()
        // A channel its handler closed removes the handlers in a loop task; run it so nothing
        // the leak sanitizer sees is left over from the harness itself.
        channel.embeddedEventLoop.run()
        drain()
        return output
    }

    /// Unary methods that answer without suspending (an embedded loop is single-threaded, so a
    /// handler must not come back from another thread).
    struct FuzzRouter: GRPCRouter {
        func hasService(_ service: String) -> Bool { service == "fuzz.Echo" }

        func method(for path: String) -> GRPCMethod? {
            switch path {
            case "/fuzz.Echo/Unary": .unary { request, _ in request }
            case "/fuzz.Echo/Fail": .unary { _, _ throws(GRPCStatus) in throw GRPCStatus(.failedPrecondition, "fuzz: failed") }
            case "/fuzz.Echo/Big": .unary { _, _ in [UInt8](repeating: 7, count: 100_000) }
            default: nil
            }
        }
    }

    // MARK: Request decoders

    /// The request decoder picked by the first byte, fed the rest: it either fails with its typed
    /// error or returns a value that encodes and decodes to the same value.
    public static func requestDecoders(_ input: [UInt8]) -> String? {
        guard let control = input.first else { return nil }
        let checks = RoundTrips.requests
        let (name, check) = checks[Int(control) % checks.count]
        return check(Array(input.dropFirst())).finding.map { "\(name): \($0)" }
    }
}

extension FuzzTargets {
    public enum Target: Sendable {
        case deframer, http2Server, requestDecoders, gateway
    }

    /// Inputs to start a corpus from.
    public static func seeds(_ target: Target) -> [[UInt8]] {
        switch target {
        case .deframer:
            return [[0], [4, 0, 0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0, 0], [2, 1, 0, 0, 0, 1, 9], [3, 0, 0, 0, 0x10, 0]]
        case .http2Server:
            return HTTP2Seeds.inputs
        case .gateway:
            return gatewaySeeds
        case .requestDecoders:
            let samples: [[UInt8]] = [
                ProtoEncode.rangeRequest(RangeRequest(key: [1], rangeEnd: [2], limit: 3)),
                ProtoEncode.putRequest(PutRequest(key: [1], value: [2], lease: 3, prevKV: true)),
                ProtoEncode.txnRequest(
                    TxnRequest(
                        compare: [Compare(result: .equal, target: .value, key: [1], operand: .value([2]))],
                        success: [.put(PutRequest(key: [1], value: [3]))], failure: [.range(RangeRequest(key: [1]))])),
                ProtoEncode.watchRequest(.create(WatchCreateRequest(key: [1], rangeEnd: [2], startRevision: 5, prevKV: true))),
            ]
            // The first byte picks the decoder: each sample goes to every decoder.
            return samples.flatMap { sample in RoundTrips.requests.indices.map { [UInt8($0)] + sample } }
        }
    }
}
