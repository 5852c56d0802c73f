internal import CEtcdProto
internal import CProtobufC
internal import KineCore

// etcdserverpb Lease messages <-> KineCore.

extension LeaseGrantRequest {
    init(_ c: Etcdserverpb__LeaseGrantRequest) { self.init(ttl: c.ttl, id: c.id) }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__LeaseGrantRequest> {
        let c = arena.message(etcdserverpb__lease_grant_request__init)
        c.pointee.ttl = ttl
        c.pointee.id = id
        return c
    }
}

extension LeaseGrantResponse {
    init(_ c: Etcdserverpb__LeaseGrantResponse) {
        self.init(header: CValues.header(c.header), id: c.id, ttl: c.ttl, error: CValues.string(c.error))
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__LeaseGrantResponse> {
        let c = arena.message(etcdserverpb__lease_grant_response__init)
        c.pointee.header = CValues.cHeader(header, &arena)
        c.pointee.id = id
        c.pointee.ttl = ttl
        if let error = arena.cString(error) { c.pointee.error = error }
        return c
    }
}

extension LeaseRevokeRequest {
    init(_ c: Etcdserverpb__LeaseRevokeRequest) { self.init(id: c.id) }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__LeaseRevokeRequest> {
        let c = arena.message(etcdserverpb__lease_revoke_request__init)
        c.pointee.id = id
        return c
    }
}

extension LeaseRevokeResponse {
    init(_ c: Etcdserverpb__LeaseRevokeResponse) { self.init(header: CValues.header(c.header)) }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__LeaseRevokeResponse> {
        let c = arena.message(etcdserverpb__lease_revoke_response__init)
        c.pointee.header = CValues.cHeader(header, &arena)
        return c
    }
}

extension LeaseKeepAliveRequest {
    init(_ c: Etcdserverpb__LeaseKeepAliveRequest) { self.init(id: c.id) }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__LeaseKeepAliveRequest> {
        let c = arena.message(etcdserverpb__lease_keep_alive_request__init)
        c.pointee.id = id
        return c
    }
}

extension LeaseKeepAliveResponse {
    init(_ c: Etcdserverpb__LeaseKeepAliveResponse) {
        self.init(header: CValues.header(c.header), id: c.id, ttl: c.ttl)
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__LeaseKeepAliveResponse> {
        let c = arena.message(etcdserverpb__lease_keep_alive_response__init)
        c.pointee.header = CValues.cHeader(header, &arena)
        c.pointee.id = id
        c.pointee.ttl = ttl
        return c
    }
}

extension LeaseTimeToLiveRequest {
    init(_ c: Etcdserverpb__LeaseTimeToLiveRequest) { self.init(id: c.id, keys: CValues.bool(c.keys)) }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__LeaseTimeToLiveRequest> {
        let c = arena.message(etcdserverpb__lease_time_to_live_request__init)
        c.pointee.id = id
        c.pointee.keys = CValues.cBool(keys)
        return c
    }
}

extension LeaseTimeToLiveResponse {
    init(_ c: Etcdserverpb__LeaseTimeToLiveResponse) {
        var keys: [Bytes] = []
        if c.n_keys > 0, let cKeys = c.keys {
            keys = (0..<c.n_keys).map { CValues.bytes(cKeys[$0]) }
        }
        self.init(header: CValues.header(c.header), id: c.id, ttl: c.ttl, grantedTTL: c.grantedttl, keys: keys)
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__LeaseTimeToLiveResponse> {
        let c = arena.message(etcdserverpb__lease_time_to_live_response__init)
        c.pointee.header = CValues.cHeader(header, &arena)
        c.pointee.id = id
        c.pointee.ttl = ttl
        c.pointee.grantedttl = grantedTTL
        if !keys.isEmpty {
            let cKeys = arena.allocate(ProtobufCBinaryData.self, count: keys.count)
            for (index, key) in keys.enumerated() {
                (cKeys + index).initialize(to: arena.binary(key))
            }
            c.pointee.n_keys = keys.count
            c.pointee.keys = cKeys
        }
        return c
    }

    var arenaEstimate: Int { keys.reduce(256) { $0 + $1.count + MemoryLayout<ProtobufCBinaryData>.stride + 16 } }
}

extension LeaseLeasesResponse {
    /// `repeated LeaseStatus leases` flattened to the IDs (LeaseStatus has no other field).
    init(_ c: Etcdserverpb__LeaseLeasesResponse) throws(ProtoError) {
        self.init(header: CValues.header(c.header), leaseIDs: try CValues.list(c.n_leases, c.leases) { $0.id })
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__LeaseLeasesResponse> {
        let c = arena.message(etcdserverpb__lease_leases_response__init)
        c.pointee.header = CValues.cHeader(header, &arena)
        if let (structs, pointers) = arena.messages(leaseIDs.count, etcdserverpb__lease_status__init) {
            for (index, id) in leaseIDs.enumerated() {
                structs[index].id = id
            }
            c.pointee.n_leases = leaseIDs.count
            c.pointee.leases = pointers
        }
        return c
    }

    var arenaEstimate: Int {
        256 + leaseIDs.count * (MemoryLayout<Etcdserverpb__LeaseStatus>.stride + MemoryLayout<UnsafeMutableRawPointer>.stride)
    }
}
