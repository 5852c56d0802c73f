import KineCore
import KineFuzzTargets
import KineProto
import KineTestSupport
import Testing

/// Hostile input: whatever bytes arrive, every decoder either fails with its typed error
/// (`ProtoError`, the type its signature throws) or returns a value that survives a round trip
/// (`RoundTrips`): encoded again and decoded, it is the same value. Never a trap, a leak or a read
/// out of bounds. Seeds are fixed so failures reproduce.
@Suite struct RobustnessTests {
    /// Every public decoder with its encoder (shared with the request-decoder fuzzer).
    static let decoders = RoundTrips.all

    /// Valid encodings with plenty of nested structure, to truncate and corrupt.
    static let validEncodings: [[UInt8]] = [
        ProtoEncode.rangeRequest(Sample.rangeRequest),
        ProtoEncode.putRequest(Sample.putRequest),
        ProtoEncode.txnRequest(Sample.txnRequest),
        ProtoEncode.txnResponse(Sample.txnResponse),
        ProtoEncode.rangeResponse(Sample.rangeResponse),
        ProtoEncode.watchResponse(Sample.watchResponse),
        ProtoEncode.watchRequest(.create(WatchCreateRequest(key: [1], rangeEnd: [2], filters: [0, 1], prevKV: true))),
        ProtoEncode.statusResponse(Sample.statusResponse),
        ProtoEncode.memberListResponse(Sample.memberListResponse),
        ProtoEncode.leaseTimeToLiveResponse(LeaseTimeToLiveResponse(header: Sample.header, id: 1, keys: [[1], [2, 3]])),
        ProtoEncode.alarmResponse(AlarmResponse(header: Sample.header, alarms: [AlarmMember(memberID: 1, alarm: 1)])),
    ]

    /// Runs every check on `bytes`; returns how many decoders accepted them.
    @discardableResult
    static func feedAll(_ bytes: [UInt8]) -> Int {
        var accepted = 0
        for (name, check) in decoders {
            let outcome = check(bytes)
            #expect(outcome.finding == nil, "\(name) on \(bytes): \(outcome.finding ?? "")")
            if outcome == .survived { accepted += 1 }
        }
        return accepted
    }

    /// Every strict prefix of every valid encoding, through every decoder.
    @Test func everyTruncationThrowsOrDecodes() {
        for encoding in Self.validEncodings {
            for length in 0..<encoding.count {
                Self.feedAll(Array(encoding[..<length]))
            }
        }
    }

    /// Cutting inside a length-delimited field is always an error, never a silent partial decode.
    @Test func truncatedTxnRequestThrows() {
        let encoding = ProtoEncode.txnRequest(Sample.txnRequest)
        #expect(throws: ProtoError.self) { try ProtoDecode.txnRequest(Array(encoding.dropLast())) }
        #expect(throws: ProtoError.malformed(message: "RangeResponse")) {
            // Half-way through is inside one of the `kvs` entries.
            let encoding = ProtoEncode.rangeResponse(Sample.rangeResponse)
            return try ProtoDecode.rangeResponse(Array(encoding[..<(encoding.count / 2)]))
        }
    }

    @Test func randomBytesThrowOrDecode() {
        var rng = SeededGenerator(seed: 0x6B69_6E65)
        for _ in 0..<3000 {
            let length = Int.random(in: 0...96, using: &rng)
            Self.feedAll((0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) })
        }
    }

    /// Single-byte corruptions of valid encodings reach deeper into the parser than pure noise.
    @Test func corruptedEncodingsThrowOrDecode() {
        var rng = SeededGenerator(seed: 42)
        for encoding in Self.validEncodings {
            for _ in 0..<300 {
                var bytes = encoding
                let index = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[index] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes[index] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
                default: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: index)
                }
                Self.feedAll(bytes)
            }
        }
    }

    /// Random but well-formed-looking wire data (valid tags, nested length-delimited fields) so
    /// the submessage paths of protobuf-c are exercised too.
    @Test func structuredRandomMessagesThrowOrDecode() {
        var rng = SeededGenerator(seed: 7)
        var accepted = 0
        for _ in 0..<3000 {
            accepted += Self.feedAll(Self.randomMessage(depth: 0, using: &rng))
        }
        // Most of these decode somewhere, so the round-trip check is exercised, not skipped.
        #expect(accepted > 3000, "only \(accepted) decodes")
    }

    static func randomMessage(depth: Int, using rng: inout SeededGenerator) -> [UInt8] {
        var out: [UInt8] = []
        for _ in 0..<Int.random(in: 0...6, using: &rng) {
            let field = [1, 2, 3, 4, 5, 6, 7, 8, 11, 64].randomElement(using: &rng) ?? 1
            let wireType = [0, 0, 2, 2, 2, 1, 5].randomElement(using: &rng) ?? 0
            out += varint(UInt64(field << 3 | wireType))
            switch wireType {
            case 0: out += varint(UInt64.random(in: 0...UInt64.max, using: &rng) >> UInt64.random(in: 0...63, using: &rng))
            case 1: out += (0..<8).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 5: out += (0..<4).map { _ in UInt8.random(in: 0...255, using: &rng) }
            default:
                let body =
                    depth < 4 && Bool.random(using: &rng)
                    ? randomMessage(depth: depth + 1, using: &rng)
                    : (0..<Int.random(in: 0...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                // Sometimes lie about the length.
                let length = Int.random(in: 0..<10, using: &rng) == 0 ? body.count + 3 : body.count
                out += varint(UInt64(length))
                out += body
            }
        }
        return out
    }

    @Test func oversizedLengthPrefixThrows() {
        // RangeRequest{key: <claims 2^63 bytes>}
        let bytes: [UInt8] = [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]
        #expect(throws: ProtoError.self) { try ProtoDecode.rangeRequest(bytes) }
        #expect(throws: ProtoError.self) { try ProtoDecode.txnRequest([0x12] + bytes.dropFirst()) }
    }

    @Test func groupWireTypesAreRejected() {
        #expect(throws: ProtoError.self) { try ProtoDecode.rangeRequest([0x0B, 0x0C]) }
        #expect(throws: ProtoError.self) { try ProtoDecode.txnRequest([0x13, 0x14]) }
    }
}

private func varint(_ value: UInt64) -> [UInt8] {
    var value = value
    var out: [UInt8] = []
    while value >= 0x80 {
        out.append(UInt8(value & 0x7F) | 0x80)
        value >>= 7
    }
    out.append(UInt8(value))
    return out
}
