import KineCore
public import KineProto

/// What one decoder made of one input.
public enum RoundTripOutcome: Equatable, Sendable {
    /// It failed with its typed error (`ProtoError`, the type its signature throws).
    case rejected(ProtoError)
    /// It decoded, and the value encoded and decoded again is the same value.
    case survived
    /// It decoded, but the value did not survive the round trip.
    case broke(String)

    public var finding: String? {
        if case .broke(let why) = self { return why }
        return nil
    }
}

/// Every public decoder of KineProto with its encoder, as round-trip checks (RobustnessTests and
/// the request-decoder fuzzer share them).
public enum RoundTrips {
    public typealias Check = @Sendable ([UInt8]) -> RoundTripOutcome

    /// decode → encode → decode must give the first decode's value.
    static func check<T: Equatable & Sendable>(
        _ decode: @escaping @Sendable ([UInt8]) throws(ProtoError) -> T, _ encode: @escaping @Sendable (T) -> [UInt8]
    ) -> Check {
        { bytes in
            let value: T
            do throws(ProtoError) { value = try decode(bytes) } catch { return .rejected(error) }
            let encoded = encode(value)
            do {
                let again = try decode(encoded)
                return again == value ? .survived : .broke("decoded \(value), re-decoded \(again)")
            } catch {
                return .broke("its own encoding \(encoded) did not decode: \(error)")
            }
        }
    }

    /// A message kine reads no field of: any decodable input, and its own encoding, decode.
    static func fieldless(_ decode: @escaping @Sendable ([UInt8]) throws(ProtoError) -> Void, _ encoded: [UInt8]) -> Check {
        { bytes in
            do throws(ProtoError) { try decode(bytes) } catch { return .rejected(error) }
            do { try decode(encoded) } catch { return .broke("its own encoding did not decode: \(error)") }
            return .survived
        }
    }

    public static let requests: [(String, Check)] = [
        ("RangeRequest", check(ProtoDecode.rangeRequest, ProtoEncode.rangeRequest)),
        ("PutRequest", check(ProtoDecode.putRequest, ProtoEncode.putRequest)),
        ("DeleteRangeRequest", check(ProtoDecode.deleteRangeRequest, ProtoEncode.deleteRangeRequest)),
        ("TxnRequest", check(ProtoDecode.txnRequest, ProtoEncode.txnRequest)),
        ("CompactionRequest", check(ProtoDecode.compactionRequest, ProtoEncode.compactionRequest)),
        ("WatchRequest", check(ProtoDecode.watchRequest, ProtoEncode.watchRequest)),
        ("LeaseGrantRequest", check(ProtoDecode.leaseGrantRequest, ProtoEncode.leaseGrantRequest)),
        ("LeaseRevokeRequest", check(ProtoDecode.leaseRevokeRequest, ProtoEncode.leaseRevokeRequest)),
        ("LeaseKeepAliveRequest", check(ProtoDecode.leaseKeepAliveRequest, ProtoEncode.leaseKeepAliveRequest)),
        ("LeaseTimeToLiveRequest", check(ProtoDecode.leaseTimeToLiveRequest, ProtoEncode.leaseTimeToLiveRequest)),
        ("LeaseLeasesRequest", fieldless(ProtoDecode.leaseLeasesRequest, ProtoEncode.leaseLeasesRequest())),
        ("StatusRequest", fieldless(ProtoDecode.statusRequest, ProtoEncode.statusRequest())),
        ("AlarmRequest", check(ProtoDecode.alarmRequest, ProtoEncode.alarmRequest)),
        ("DefragmentRequest", fieldless(ProtoDecode.defragmentRequest, ProtoEncode.defragmentRequest())),
        ("MemberListRequest", check(ProtoDecode.memberListRequest, { ProtoEncode.memberListRequest(linearizable: $0) })),
        ("HashRequest", fieldless(ProtoDecode.hashRequest, ProtoEncode.hashRequest())),
        ("SnapshotRequest", fieldless(ProtoDecode.snapshotRequest, ProtoEncode.snapshotRequest())),
        ("HashKVRequest", check(ProtoDecode.hashKVRequest, { ProtoEncode.hashKVRequest(revision: $0) })),
        ("HealthCheckRequest", check(ProtoDecode.healthCheckRequest, { ProtoEncode.healthCheckRequest(service: $0) })),
        ("HAStatusRequest", check(ProtoDecode.haStatusRequest, ProtoEncode.haStatusRequest)),
        ("HAPauseRequest", check(ProtoDecode.haPauseRequest, ProtoEncode.haPauseRequest)),
        ("HAHandoverRequest", check(ProtoDecode.haHandoverRequest, ProtoEncode.haHandoverRequest)),
    ]

    public static let responses: [(String, Check)] = [
        ("RangeResponse", check(ProtoDecode.rangeResponse, ProtoEncode.rangeResponse)),
        ("PutResponse", check(ProtoDecode.putResponse, ProtoEncode.putResponse)),
        ("DeleteRangeResponse", check(ProtoDecode.deleteRangeResponse, ProtoEncode.deleteRangeResponse)),
        ("TxnResponse", check(ProtoDecode.txnResponse, ProtoEncode.txnResponse)),
        ("CompactionResponse", check(ProtoDecode.compactionResponse, ProtoEncode.compactionResponse)),
        ("WatchResponse", check(ProtoDecode.watchResponse, ProtoEncode.watchResponse)),
        ("LeaseGrantResponse", check(ProtoDecode.leaseGrantResponse, ProtoEncode.leaseGrantResponse)),
        ("LeaseRevokeResponse", check(ProtoDecode.leaseRevokeResponse, ProtoEncode.leaseRevokeResponse)),
        ("LeaseKeepAliveResponse", check(ProtoDecode.leaseKeepAliveResponse, ProtoEncode.leaseKeepAliveResponse)),
        ("LeaseTimeToLiveResponse", check(ProtoDecode.leaseTimeToLiveResponse, ProtoEncode.leaseTimeToLiveResponse)),
        ("LeaseLeasesResponse", check(ProtoDecode.leaseLeasesResponse, ProtoEncode.leaseLeasesResponse)),
        ("StatusResponse", check(ProtoDecode.statusResponse, ProtoEncode.statusResponse)),
        ("AlarmResponse", check(ProtoDecode.alarmResponse, ProtoEncode.alarmResponse)),
        ("DefragmentResponse", check(ProtoDecode.defragmentResponse, ProtoEncode.defragmentResponse)),
        ("MemberListResponse", check(ProtoDecode.memberListResponse, ProtoEncode.memberListResponse)),
        ("HashKVResponse", check(ProtoDecode.hashKVResponse, ProtoEncode.hashKVResponse)),
        ("HashResponse", check(ProtoDecode.hashResponse, ProtoEncode.hashResponse)),
        ("SnapshotResponse", check(ProtoDecode.snapshotResponse, ProtoEncode.snapshotResponse)),
        ("HealthCheckResponse", check(ProtoDecode.healthCheckResponse, ProtoEncode.healthCheckResponse)),
        ("HAStatus", check(ProtoDecode.haStatus, ProtoEncode.haStatus)),
    ]

    public static var all: [(String, Check)] { requests + responses }
}
