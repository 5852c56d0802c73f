import KineCore
import KineProto
import Testing

/// encode → decode round trips for the Watch and Lease services.
@Suite struct WatchLeaseRoundTripTests {
    @Test(arguments: [
        WatchRequest.create(
            WatchCreateRequest(
                key: Sample.binaryKey, rangeEnd: [0], startRevision: 100, progressNotify: true,
                filters: [0, 1, 7, -3], prevKV: true, watchID: 12, fragment: true
            )),
        .create(WatchCreateRequest()),
        .cancel(watchID: 12),
        .cancel(watchID: 0),
        .progress,
        .empty,
    ])
    func watchRequest(request: WatchRequest) throws {
        #expect(try ProtoDecode.watchRequest(ProtoEncode.watchRequest(request)) == request)
    }

    @Test func watchResponse() throws {
        #expect(try ProtoDecode.watchResponse(ProtoEncode.watchResponse(Sample.watchResponse)) == Sample.watchResponse)
        let progress = WatchResponse(header: Sample.header, watchID: -1)
        #expect(try ProtoDecode.watchResponse(ProtoEncode.watchResponse(progress)) == progress)
    }

    @Test func leaseGrant() throws {
        let request = LeaseGrantRequest(ttl: 60, id: 0x1234_5678)
        #expect(try ProtoDecode.leaseGrantRequest(ProtoEncode.leaseGrantRequest(request)) == request)
        let response = LeaseGrantResponse(header: Sample.header, id: 0x1234_5678, ttl: 60, error: "lease exists")
        #expect(try ProtoDecode.leaseGrantResponse(ProtoEncode.leaseGrantResponse(response)) == response)
    }

    @Test func leaseRevoke() throws {
        let request = LeaseRevokeRequest(id: 99)
        #expect(try ProtoDecode.leaseRevokeRequest(ProtoEncode.leaseRevokeRequest(request)) == request)
        let response = LeaseRevokeResponse(header: Sample.header)
        #expect(try ProtoDecode.leaseRevokeResponse(ProtoEncode.leaseRevokeResponse(response)) == response)
    }

    @Test func leaseKeepAlive() throws {
        let request = LeaseKeepAliveRequest(id: 99)
        #expect(try ProtoDecode.leaseKeepAliveRequest(ProtoEncode.leaseKeepAliveRequest(request)) == request)
        let response = LeaseKeepAliveResponse(header: Sample.header, id: 99, ttl: -1)
        #expect(try ProtoDecode.leaseKeepAliveResponse(ProtoEncode.leaseKeepAliveResponse(response)) == response)
    }

    @Test func leaseTimeToLive() throws {
        let request = LeaseTimeToLiveRequest(id: 99, keys: true)
        #expect(try ProtoDecode.leaseTimeToLiveRequest(ProtoEncode.leaseTimeToLiveRequest(request)) == request)
        let response = LeaseTimeToLiveResponse(
            header: Sample.header, id: 99, ttl: 30, grantedTTL: 60, keys: [Sample.binaryKey, [], Array("/a".utf8)]
        )
        #expect(try ProtoDecode.leaseTimeToLiveResponse(ProtoEncode.leaseTimeToLiveResponse(response)) == response)
    }

    @Test func leaseLeases() throws {
        #expect(ProtoEncode.leaseLeasesRequest() == [])
        try ProtoDecode.leaseLeasesRequest(ProtoEncode.leaseLeasesRequest())
        let response = LeaseLeasesResponse(header: Sample.header, leaseIDs: [1, 2, 0, .max])
        #expect(try ProtoDecode.leaseLeasesResponse(ProtoEncode.leaseLeasesResponse(response)) == response)
    }
}
