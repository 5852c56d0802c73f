internal import CEtcdProto
internal import CProtobufC
internal import KineCore

// etcdserverpb Maintenance and Cluster messages <-> KineCore.

extension StatusResponse {
    init(_ c: Etcdserverpb__StatusResponse) {
        self.init(
            header: CValues.header(c.header), version: CValues.string(c.version), dbSize: c.dbsize,
            leader: c.leader, raftIndex: c.raftindex, raftTerm: c.raftterm, raftAppliedIndex: c.raftappliedindex,
            errors: CValues.strings(c.n_errors, c.errors), dbSizeInUse: c.dbsizeinuse, isLearner: CValues.bool(c.islearner)
        )
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__StatusResponse> {
        let c = arena.message(etcdserverpb__status_response__init)
        c.pointee.header = CValues.cHeader(header, &arena)
        if let version = arena.cString(version) { c.pointee.version = version }
        c.pointee.dbsize = dbSize
        c.pointee.leader = leader
        c.pointee.raftindex = raftIndex
        c.pointee.raftterm = raftTerm
        c.pointee.raftappliedindex = raftAppliedIndex
        c.pointee.n_errors = errors.count
        c.pointee.errors = arena.cStrings(errors)
        c.pointee.dbsizeinuse = dbSizeInUse
        c.pointee.islearner = CValues.cBool(isLearner)
        return c
    }
}

extension AlarmRequest {
    /// Action and alarm type stay raw numbers, as KineCore models them.
    init(_ c: Etcdserverpb__AlarmRequest) {
        self.init(action: CValues.raw(c.action.rawValue), memberID: c.memberid, alarm: CValues.raw(c.alarm.rawValue))
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__AlarmRequest> {
        let c = arena.message(etcdserverpb__alarm_request__init)
        c.pointee.action = Etcdserverpb__AlarmRequest__AlarmAction(rawValue: CValues.cRaw(action))
        c.pointee.memberid = memberID
        c.pointee.alarm = Etcdserverpb__AlarmType(rawValue: CValues.cRaw(alarm))
        return c
    }
}

extension AlarmResponse {
    init(_ c: Etcdserverpb__AlarmResponse) throws(ProtoError) {
        self.init(
            header: CValues.header(c.header),
            alarms: try CValues.list(c.n_alarms, c.alarms) { AlarmMember(memberID: $0.memberid, alarm: CValues.raw($0.alarm.rawValue)) }
        )
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__AlarmResponse> {
        let c = arena.message(etcdserverpb__alarm_response__init)
        c.pointee.header = CValues.cHeader(header, &arena)
        if let (structs, pointers) = arena.messages(alarms.count, etcdserverpb__alarm_member__init) {
            for (index, alarm) in alarms.enumerated() {
                structs[index].memberid = alarm.memberID
                structs[index].alarm = Etcdserverpb__AlarmType(rawValue: CValues.cRaw(alarm.alarm))
            }
            c.pointee.n_alarms = alarms.count
            c.pointee.alarms = pointers
        }
        return c
    }
}

extension Member {
    init(_ c: Etcdserverpb__Member) {
        self.init(
            id: c.id, name: CValues.string(c.name), peerURLs: CValues.strings(c.n_peerurls, c.peerurls),
            clientURLs: CValues.strings(c.n_clienturls, c.clienturls), isLearner: CValues.bool(c.islearner)
        )
    }

    func fill(_ c: UnsafeMutablePointer<Etcdserverpb__Member>, _ arena: inout Arena) {
        c.pointee.id = id
        if let name = arena.cString(name) { c.pointee.name = name }
        c.pointee.n_peerurls = peerURLs.count
        c.pointee.peerurls = arena.cStrings(peerURLs)
        c.pointee.n_clienturls = clientURLs.count
        c.pointee.clienturls = arena.cStrings(clientURLs)
        c.pointee.islearner = CValues.cBool(isLearner)
    }
}

extension MemberListResponse {
    init(_ c: Etcdserverpb__MemberListResponse) throws(ProtoError) {
        self.init(header: CValues.header(c.header), members: try CValues.list(c.n_members, c.members) { Member($0) })
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__MemberListResponse> {
        let c = arena.message(etcdserverpb__member_list_response__init)
        c.pointee.header = CValues.cHeader(header, &arena)
        if let (structs, pointers) = arena.messages(members.count, etcdserverpb__member__init) {
            for (index, member) in members.enumerated() {
                member.fill(structs + index, &arena)
            }
            c.pointee.n_members = members.count
            c.pointee.members = pointers
        }
        return c
    }
}

extension HashKVResponse {
    init(_ c: Etcdserverpb__HashKVResponse) {
        self.init(header: CValues.header(c.header), hash: c.hash, compactRevision: c.compact_revision, hashRevision: c.hash_revision)
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__HashKVResponse> {
        let c = arena.message(etcdserverpb__hash_kvresponse__init)
        c.pointee.header = CValues.cHeader(header, &arena)
        c.pointee.hash = hash
        c.pointee.compact_revision = compactRevision
        c.pointee.hash_revision = hashRevision
        return c
    }
}

extension SnapshotResponse {
    init(_ c: Etcdserverpb__SnapshotResponse) {
        self.init(remainingBytes: c.remaining_bytes, blob: CValues.bytes(c.blob))
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__SnapshotResponse> {
        let c = arena.message(etcdserverpb__snapshot_response__init)
        c.pointee.remaining_bytes = remainingBytes
        c.pointee.blob = arena.binary(blob)
        return c
    }
}

extension HashResponse {
    init(_ c: Etcdserverpb__HashResponse) {
        self.init(header: CValues.header(c.header), hash: c.hash)
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__HashResponse> {
        let c = arena.message(etcdserverpb__hash_response__init)
        c.pointee.header = CValues.cHeader(header, &arena)
        c.pointee.hash = hash
        return c
    }
}
