import KineCore
import KineProto
import Testing

/// encode → decode round trips for Maintenance, Cluster and Health.
@Suite struct MaintenanceRoundTripTests {
    @Test func status() throws {
        #expect(ProtoEncode.statusRequest() == [])
        try ProtoDecode.statusRequest(ProtoEncode.statusRequest())
        #expect(try ProtoDecode.statusResponse(ProtoEncode.statusResponse(Sample.statusResponse)) == Sample.statusResponse)
    }

    @Test func alarm() throws {
        let request = AlarmRequest(action: 2, memberID: 42, alarm: 1)
        #expect(try ProtoDecode.alarmRequest(ProtoEncode.alarmRequest(request)) == request)
        let response = AlarmResponse(
            header: Sample.header, alarms: [AlarmMember(memberID: 42, alarm: 1), AlarmMember(memberID: 0, alarm: 0)]
        )
        #expect(try ProtoDecode.alarmResponse(ProtoEncode.alarmResponse(response)) == response)
    }

    @Test func defragment() throws {
        #expect(ProtoEncode.defragmentRequest() == [])
        try ProtoDecode.defragmentRequest([])
        #expect(try ProtoDecode.defragmentResponse(ProtoEncode.defragmentResponse(header: Sample.header)) == Sample.header)
    }

    @Test func memberList() throws {
        #expect(try ProtoDecode.memberListRequest(ProtoEncode.memberListRequest(linearizable: true)))
        #expect(try !ProtoDecode.memberListRequest(ProtoEncode.memberListRequest()))
        let response = Sample.memberListResponse
        #expect(try ProtoDecode.memberListResponse(ProtoEncode.memberListResponse(response)) == response)
    }

    @Test func hashKV() throws {
        #expect(try ProtoDecode.hashKVRequest(ProtoEncode.hashKVRequest(revision: 77)) == 77)
        let response = HashKVResponse(header: Sample.header, hash: .max, compactRevision: 5)
        #expect(try ProtoDecode.hashKVResponse(ProtoEncode.hashKVResponse(response)) == response)
    }

    @Test(arguments: [HealthServingStatus.unknown, .serving, .notServing, .serviceUnknown])
    func health(status: HealthServingStatus) throws {
        #expect(try ProtoDecode.healthCheckResponse(ProtoEncode.healthCheckResponse(status)) == status)
    }

    @Test func healthCheckRequest() throws {
        #expect(try ProtoDecode.healthCheckRequest(ProtoEncode.healthCheckRequest()) == "")
        #expect(try ProtoDecode.healthCheckRequest(ProtoEncode.healthCheckRequest(service: "etcdserverpb.KV")) == "etcdserverpb.KV")
    }
}
