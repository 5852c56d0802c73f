import KineCore
import KineProto
import KineTestSupport
import Testing

/// Hostile input: whatever bytes arrive, every decoder must return or throw — never trap, leak
/// or read out of bounds. Seeds are fixed so failures reproduce.
@Suite struct RobustnessTests {
    typealias Decoder = @Sendable ([UInt8]) throws -> Void

    /// Every public decoder, by message name.
    static let decoders: [(String, Decoder)] = [
        ("RangeRequest", { _ = try ProtoDecode.rangeRequest($0) }),
        ("PutRequest", { _ = try ProtoDecode.putRequest($0) }),
        ("DeleteRangeRequest", { _ = try ProtoDecode.deleteRangeRequest($0) }),
        ("TxnRequest", { _ = try ProtoDecode.txnRequest($0) }),
        ("CompactionRequest", { _ = try ProtoDecode.compactionRequest($0) }),
        ("WatchRequest", { _ = try ProtoDecode.watchRequest($0) }),
        ("LeaseGrantRequest", { _ = try ProtoDecode.leaseGrantRequest($0) }),
        ("LeaseRevokeRequest", { _ = try ProtoDecode.leaseRevokeRequest($0) }),
        ("LeaseKeepAliveRequest", { _ = try ProtoDecode.leaseKeepAliveRequest($0) }),
        ("LeaseTimeToLiveRequest", { _ = try ProtoDecode.leaseTimeToLiveRequest($0) }),
        ("LeaseLeasesRequest", { try ProtoDecode.leaseLeasesRequest($0) }),
        ("StatusRequest", { try ProtoDecode.statusRequest($0) }),
        ("AlarmRequest", { _ = try ProtoDecode.alarmRequest($0) }),
        ("DefragmentRequest", { try ProtoDecode.defragmentRequest($0) }),
        ("MemberListRequest", { _ = try ProtoDecode.memberListRequest($0) }),
        ("HashKVRequest", { _ = try ProtoDecode.hashKVRequest($0) }),
        ("HealthCheckRequest", { _ = try ProtoDecode.healthCheckRequest($0) }),
        ("RangeResponse", { _ = try ProtoDecode.rangeResponse($0) }),
        ("PutResponse", { _ = try ProtoDecode.putResponse($0) }),
        ("DeleteRangeResponse", { _ = try ProtoDecode.deleteRangeResponse($0) }),
        ("TxnResponse", { _ = try ProtoDecode.txnResponse($0) }),
        ("CompactionResponse", { _ = try ProtoDecode.compactionResponse($0) }),
        ("WatchResponse", { _ = try ProtoDecode.watchResponse($0) }),
        ("LeaseGrantResponse", { _ = try ProtoDecode.leaseGrantResponse($0) }),
        ("LeaseRevokeResponse", { _ = try ProtoDecode.leaseRevokeResponse($0) }),
        ("LeaseKeepAliveResponse", { _ = try ProtoDecode.leaseKeepAliveResponse($0) }),
        ("LeaseTimeToLiveResponse", { _ = try ProtoDecode.leaseTimeToLiveResponse($0) }),
        ("LeaseLeasesResponse", { _ = try ProtoDecode.leaseLeasesResponse($0) }),
        ("StatusResponse", { _ = try ProtoDecode.statusResponse($0) }),
        ("AlarmResponse", { _ = try ProtoDecode.alarmResponse($0) }),
        ("DefragmentResponse", { _ = try ProtoDecode.defragmentResponse($0) }),
        ("MemberListResponse", { _ = try ProtoDecode.memberListResponse($0) }),
        ("HashKVResponse", { _ = try ProtoDecode.hashKVResponse($0) }),
        ("HealthCheckResponse", { _ = try ProtoDecode.healthCheckResponse($0) }),
    ]

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

    static func feedAll(_ bytes: [UInt8]) {
        for (_, decode) in decoders {
            _ = try? decode(bytes)
        }
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
        for _ in 0..<3000 {
            Self.feedAll(Self.randomMessage(depth: 0, using: &rng))
        }
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
