internal import CEtcdProto
internal import CProtobufC
public import KineCore

// kine.ha.v1 messages <-> KineCore.

extension HAStatusRequest {
    init(_ c: Kine__Ha__V1__StatusRequest) {
        self.init(fromNode: CValues.string(c.from_node), term: c.term)
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Kine__Ha__V1__StatusRequest> {
        let c = arena.message(kine__ha__v1__status_request__init)
        if let node = arena.cString(fromNode) { c.pointee.from_node = node }
        c.pointee.term = term
        return c
    }
}

extension HAPeerView {
    init(_ c: Kine__Ha__V1__PeerView) {
        self.init()
        node = CValues.string(c.node)
        rpcOK = CValues.bool(c.rpc_ok)
        sqlOK = CValues.bool(c.sql_ok)
        role = CValues.string(c.role)
        term = c.term
        failedRounds = c.failed_rounds
        lastProbeUnixMilliseconds = c.last_probe_unix_ms
        error = CValues.string(c.error)
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Kine__Ha__V1__PeerView> {
        let c = arena.message(kine__ha__v1__peer_view__init)
        if let text = arena.cString(node) { c.pointee.node = text }
        c.pointee.rpc_ok = CValues.cBool(rpcOK)
        c.pointee.sql_ok = CValues.cBool(sqlOK)
        if let text = arena.cString(role) { c.pointee.role = text }
        c.pointee.term = term
        c.pointee.failed_rounds = failedRounds
        c.pointee.last_probe_unix_ms = lastProbeUnixMilliseconds
        if let text = arena.cString(error) { c.pointee.error = text }
        return c
    }
}

extension HAStatus {
    init(_ c: Kine__Ha__V1__StatusResponse) {
        self.init()
        node = CValues.string(c.node)
        term = c.term
        role = CValues.string(c.role)
        leader = CValues.string(c.leader)
        paused = CValues.bool(c.paused)
        maxRevision = c.max_revision
        highestServed = c.highest_served
        subscription = CValues.string(c.subscription)
        lagRevisions = c.lag_revisions
        postgresUp = CValues.bool(c.postgres_up)
        clockUnixMilliseconds = c.clock_unix_ms
        replication = CValues.string(c.replication)
        syncActive = CValues.bool(c.sync_active)
        epochStart = c.epoch_start
        hasData = CValues.bool(c.has_data)
        priority = CValues.string(c.priority)
        schemaVersion = c.schema_version
        peer = c.peer.map { HAPeerView($0.pointee) }
        localMaxID = c.local_max_id
        reunionWinner = CValues.string(c.reunion_winner)
        witnessLost = CValues.bool(c.witness_lost)
        serving = CValues.bool(c.serving)
        lastWriteUnixMilliseconds = c.last_write_unix_ms
        pausedUntilUnixMilliseconds = c.paused_until_unix_ms
        pauseSetUnixMilliseconds = c.pause_set_unix_ms
        handoverTo = CValues.string(c.handover_to)
        witness = CValues.string(c.witness)
        reunionForkID = c.reunion_fork_id
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Kine__Ha__V1__StatusResponse> {
        let c = arena.message(kine__ha__v1__status_response__init)
        if let text = arena.cString(node) { c.pointee.node = text }
        c.pointee.term = term
        if let text = arena.cString(role) { c.pointee.role = text }
        if let text = arena.cString(leader) { c.pointee.leader = text }
        c.pointee.paused = CValues.cBool(paused)
        c.pointee.max_revision = maxRevision
        c.pointee.highest_served = highestServed
        if let text = arena.cString(subscription) { c.pointee.subscription = text }
        c.pointee.lag_revisions = lagRevisions
        c.pointee.postgres_up = CValues.cBool(postgresUp)
        c.pointee.clock_unix_ms = clockUnixMilliseconds
        if let text = arena.cString(replication) { c.pointee.replication = text }
        c.pointee.sync_active = CValues.cBool(syncActive)
        c.pointee.epoch_start = epochStart
        c.pointee.has_data = CValues.cBool(hasData)
        if let text = arena.cString(priority) { c.pointee.priority = text }
        c.pointee.schema_version = schemaVersion
        if let peer { c.pointee.peer = peer.toC(&arena) }
        c.pointee.local_max_id = localMaxID
        if let text = arena.cString(reunionWinner) { c.pointee.reunion_winner = text }
        c.pointee.witness_lost = CValues.cBool(witnessLost)
        c.pointee.serving = CValues.cBool(serving)
        c.pointee.last_write_unix_ms = lastWriteUnixMilliseconds
        c.pointee.paused_until_unix_ms = pausedUntilUnixMilliseconds
        c.pointee.pause_set_unix_ms = pauseSetUnixMilliseconds
        if let text = arena.cString(handoverTo) { c.pointee.handover_to = text }
        if let text = arena.cString(witness) { c.pointee.witness = text }
        c.pointee.reunion_fork_id = reunionForkID
        return c
    }
}

extension HAPauseRequest {
    init(_ c: Kine__Ha__V1__PauseRequest) {
        self.init(untilUnixMilliseconds: c.until_unix_ms)
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Kine__Ha__V1__PauseRequest> {
        let c = arena.message(kine__ha__v1__pause_request__init)
        c.pointee.until_unix_ms = untilUnixMilliseconds
        return c
    }
}

extension HAHandoverRequest {
    init(_ c: Kine__Ha__V1__HandoverRequest) {
        self.init(timeoutMilliseconds: c.timeout_ms)
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Kine__Ha__V1__HandoverRequest> {
        let c = arena.message(kine__ha__v1__handover_request__init)
        c.pointee.timeout_ms = timeoutMilliseconds
        return c
    }
}

extension ProtoDecode {
    public static func haStatusRequest(_ bytes: [UInt8]) throws(ProtoError) -> HAStatusRequest {
        try CMessage.decode(bytes, "StatusRequest", kine__ha__v1__status_request__unpack, kine__ha__v1__status_request__free_unpacked) {
            HAStatusRequest($0)
        }
    }

    public static func haPauseRequest(_ bytes: [UInt8]) throws(ProtoError) -> HAPauseRequest {
        try CMessage.decode(bytes, "PauseRequest", kine__ha__v1__pause_request__unpack, kine__ha__v1__pause_request__free_unpacked) {
            HAPauseRequest($0)
        }
    }

    public static func haHandoverRequest(_ bytes: [UInt8]) throws(ProtoError) -> HAHandoverRequest {
        try CMessage.decode(
            bytes, "HandoverRequest", kine__ha__v1__handover_request__unpack, kine__ha__v1__handover_request__free_unpacked
        ) { HAHandoverRequest($0) }
    }

    public static func haStatus(_ bytes: [UInt8]) throws(ProtoError) -> HAStatus {
        try CMessage.decode(bytes, "StatusResponse", kine__ha__v1__status_response__unpack, kine__ha__v1__status_response__free_unpacked) {
            HAStatus($0)
        }
    }
}

extension ProtoEncode {
    public static func haStatusRequest(_ request: HAStatusRequest) -> [UInt8] {
        CMessage.encode(capacity: 256, kine__ha__v1__status_request__get_packed_size, kine__ha__v1__status_request__pack) {
            request.toC(&$0)
        }
    }

    public static func haPauseRequest(_ request: HAPauseRequest) -> [UInt8] {
        CMessage.encode(capacity: 32, kine__ha__v1__pause_request__get_packed_size, kine__ha__v1__pause_request__pack) {
            request.toC(&$0)
        }
    }

    public static func haHandoverRequest(_ request: HAHandoverRequest) -> [UInt8] {
        CMessage.encode(capacity: 32, kine__ha__v1__handover_request__get_packed_size, kine__ha__v1__handover_request__pack) {
            request.toC(&$0)
        }
    }

    public static func haStatus(_ status: HAStatus) -> [UInt8] {
        CMessage.encode(capacity: 1024, kine__ha__v1__status_response__get_packed_size, kine__ha__v1__status_response__pack) {
            status.toC(&$0)
        }
    }
}
