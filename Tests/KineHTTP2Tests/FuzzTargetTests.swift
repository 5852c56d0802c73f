import KineFuzzTargets
import KineTestSupport
import Testing

/// The fuzz targets' properties over seeded inputs, in every test run (libFuzzer explores
/// further under scripts/fuzz.sh): handcrafted calls, their corruptions, and random bytes.
@Suite("Fuzz targets over seeded inputs")
struct FuzzTargetTests {
    static func mutations(of seeds: [[UInt8]], count: Int, seed: UInt64) -> [[UInt8]] {
        var rng = SeededGenerator(seed: seed)
        var out = seeds
        for _ in 0..<count {
            var bytes = seeds.randomElement(using: &rng) ?? [0]
            for _ in 0..<Int.random(in: 1...4, using: &rng) where !bytes.isEmpty {
                let index = Int.random(in: 1..<max(2, bytes.count), using: &rng) % bytes.count
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: bytes[index] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes[index] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
                case 2: bytes.remove(at: index)
                default: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: index)
                }
            }
            out.append(bytes)
        }
        return out
    }

    @Test("HTTP/2 server connection: well-formed calls and their corruptions")
    func http2Server() {
        for input in Self.mutations(of: HTTP2Seeds.inputs, count: 1500, seed: 11) {
            let finding = FuzzTargets.http2Server(input)
            #expect(finding == nil, "\(input): \(finding ?? "")")
        }
    }

    @Test("Gateway: request bodies, response payloads, HTTP/1.1 requests and their corruptions")
    func gateway() {
        let seeds = FuzzTargets.seeds(.gateway)
        // Every seed under every control byte, so each reaches every message and mode.
        let spread = seeds.flatMap { seed in (0...255).map { [UInt8($0)] + seed.dropFirst() } }
        for input in spread + Self.mutations(of: seeds, count: 3000, seed: 17) {
            let finding = FuzzTargets.gateway(input)
            #expect(finding == nil, "\(input): \(finding ?? "")")
        }
    }

    @Test("gRPC deframer: random bytes and well-framed messages")
    func deframer() {
        var rng = SeededGenerator(seed: 5)
        for _ in 0..<3000 {
            var input = [UInt8.random(in: 0...255, using: &rng)]
            if Bool.random(using: &rng) {
                input += (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                for _ in 0..<Int.random(in: 0...4, using: &rng) {
                    let body = (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                    input += [0, 0, 0, 0, UInt8(body.count)] + body
                }
            }
            let finding = FuzzTargets.deframer(input)
            #expect(finding == nil, "\(input): \(finding ?? "")")
        }
    }
}

@Suite("Fuzz targets reach the calls")
struct FuzzTargetReachTests {
    /// Frames of a server's output: (type, flags, stream, payload).
    static func frames(_ bytes: [UInt8]) -> [(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8])] {
        var out: [(UInt8, UInt8, UInt32, [UInt8])] = []
        var i = 0
        while i + 9 <= bytes.count {
            let length = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
            guard i + 9 + length <= bytes.count else { break }
            let stream = UInt32(bytes[i + 5] & 0x7F) << 24 | UInt32(bytes[i + 6]) << 16 | UInt32(bytes[i + 7]) << 8 | UInt32(bytes[i + 8])
            out.append((bytes[i + 3], bytes[i + 4], stream, Array(bytes[(i + 9)..<(i + 9 + length)])))
            i += 9 + length
        }
        return out
    }

    @Test("The unary seed is answered: response HEADERS, the echoed message, trailers")
    func unarySeedIsAnswered() throws {
        let output = try FuzzTargets.serve(HTTP2Seeds.inputs[0])
        let onStream = Self.frames(output).filter { $0.stream == 1 }
        #expect(onStream.map(\.type) == [1, 0, 1], "\(onStream.map(\.type))")
        #expect(onStream.first { $0.type == 0 }?.payload == [0, 0, 0, 0, 3, 1, 2, 3])
    }

    @Test("The timeout seed ends in DEADLINE_EXCEEDED once the embedded clock passes it")
    func deadlineSeed() throws {
        let output = try FuzzTargets.serve(HTTP2Seeds.inputs[3])
        // Trailers-Only: one HEADERS with END_STREAM; HPACK is not decoded here, the status
        // digit "4" of grpc-status is in the literal block.
        let headers = Self.frames(output).filter { $0.stream == 1 && $0.type == 1 }
        #expect(headers.count == 1 && headers[0].flags & 1 == 1)
    }
}
