import KineCore
import KineHTTP2
import KineProto
import KineStore

/// `/v3electionpb.Election/*`: etcd's server-side election (`v3election`), the election recipe
/// on keys with leases. A campaign writes `name/<lease in hex>` holding its value and waits
/// until every older candidate's key is gone; the leader is the oldest key under `name/`.
struct ElectionService: Sendable {
    let stores: StoreHandle
    let identity: ServerIdentity
    let gate: AuthGate

    /// etcd's errors here have no gRPC mapping: clients see UNKNOWN with these texts.
    static let notLeader = EtcdError(.unknown, "election: not leader")
    static let noLeader = EtcdError(.unknown, "election: no leader")
    static let missingLeaderKey = EtcdError(.unknown, "\"leader\" field must be provided")

    struct LeaderKey: Sendable {
        var name: Bytes
        var key: Bytes
        var revision: Int64
        var lease: Int64

        init(_ fields: ProtoFields) {
            name = fields.bytes(1)
            key = fields.bytes(2)
            revision = fields.int64(3)
            lease = fields.int64(4)
        }
    }

    func methods() -> [String: GRPCMethod] {
        func unary(
            _ message: String, _ body: @escaping @Sendable (ProtoFields, KeyRecipes) async throws(EtcdError) -> ProtoFieldWriter
        )
            -> GRPCMethod
        {
            .unary { bytes, context throws(GRPCStatus) in
                let fields = try StatusMapping.decode(bytes) { bytes throws(ProtoError) in
                    try ProtoFields(bytes, message: "v3electionpb.\(message)")
                }
                return try await StatusMapping.runRecipe { () async throws(EtcdError) in
                    try await body(fields, KeyRecipes(stores: stores, gate: gate, context: context)).bytes
                }
            }
        }
        return [
            "/v3electionpb.Election/Campaign": unary("CampaignRequest", campaign),
            "/v3electionpb.Election/Proclaim": unary("ProclaimRequest", proclaim),
            "/v3electionpb.Election/Leader": unary("LeaderRequest", leader),
            "/v3electionpb.Election/Resign": unary("ResignRequest", resign),
            "/v3electionpb.Election/Observe": .bidirectional { requests, responses, context throws(GRPCStatus) in
                var iterator = requests.makeAsyncIterator()
                guard let first = await iterator.next() else { return }
                let fields = try StatusMapping.decode(first) { bytes throws(ProtoError) in
                    try ProtoFields(bytes, message: "v3electionpb.LeaderRequest")
                }
                try await StatusMapping.runRecipe { () async throws(EtcdError) in
                    try await observe(fields.bytes(1), KeyRecipes(stores: stores, gate: gate, context: context), responses)
                }
            },
        ]
    }

    func campaign(_ fields: ProtoFields, _ recipes: KeyRecipes) async throws(EtcdError) -> ProtoFieldWriter {
        let name = fields.bytes(1)
        let value = fields.bytes(3)
        let lease = try await recipes.sessionLease(fields.int64(2))
        let prefix = name + Array("/".utf8)
        let key = KeyRecipes.ownKey(prefix, lease: lease)
        let attempt = try await recipes.txn(
            TxnRequest(
                compare: [Compare(result: .equal, target: .create, key: key, operand: .createRevision(0))],
                success: [.put(PutRequest(key: key, value: value, lease: lease))],
                failure: [.range(RangeRequest(key: key))]))
        var revision = attempt.header.revision
        if !attempt.succeeded, case .range(let mine)? = attempt.responses.first, let kv = mine.kvs.first {
            // Campaigning again with the same lease: the candidacy stands, with the new value.
            revision = kv.createRevision
            if kv.value != value {
                try await proclaim(key: key, revision: revision, lease: lease, value: value, recipes)
            }
        }
        do {
            _ = try await recipes.waitDeletes(prefix, maxCreateRevision: revision - 1)
        } catch {
            if error == KeyRecipes.cancelled {
                // try?: the call is gone; resigning is etcd's courtesy, the lease ends it anyway.
                _ = try? await resign(key: key, revision: revision, recipes)
            }
            throw error
        }
        var response = header(attempt.header)
        var leader = ProtoFieldWriter()
        leader.bytes(1, name)
        leader.bytes(2, key)
        leader.int64(3, revision)
        leader.int64(4, lease)
        response.message(2, leader)
        return response
    }

    func proclaim(_ fields: ProtoFields, _ recipes: KeyRecipes) async throws(EtcdError) -> ProtoFieldWriter {
        guard let leaderFields = try StatusMapping.decodeField({ () throws(ProtoError) in try fields.message(1, "v3electionpb.LeaderKey") })
        else {
            throw Self.missingLeaderKey
        }
        let leader = LeaderKey(leaderFields)
        let lease = try await recipes.sessionLease(leader.lease)
        return header(try await proclaim(key: leader.key, revision: leader.revision, lease: lease, value: fields.bytes(2), recipes))
    }

    /// Puts `value` on the leader key if it still is the one created at `revision`.
    @discardableResult
    func proclaim(key: Bytes, revision: Int64, lease: Int64, value: Bytes, _ recipes: KeyRecipes) async throws(EtcdError) -> ResponseHeader
    {
        let response = try await recipes.txn(
            TxnRequest(
                compare: [Compare(result: .equal, target: .create, key: key, operand: .createRevision(revision))],
                success: [.put(PutRequest(key: key, value: value, lease: lease))]))
        guard response.succeeded else { throw Self.notLeader }
        return response.header
    }

    func resign(_ fields: ProtoFields, _ recipes: KeyRecipes) async throws(EtcdError) -> ProtoFieldWriter {
        guard let leaderFields = try StatusMapping.decodeField({ () throws(ProtoError) in try fields.message(1, "v3electionpb.LeaderKey") })
        else {
            throw Self.missingLeaderKey
        }
        let leader = LeaderKey(leaderFields)
        _ = try await recipes.sessionLease(leader.lease)
        return header(try await resign(key: leader.key, revision: leader.revision, recipes))
    }

    /// Deletes the leader key if it still is the one created at `revision` (no error otherwise).
    func resign(key: Bytes, revision: Int64, _ recipes: KeyRecipes) async throws(EtcdError) -> ResponseHeader {
        try await recipes.txn(
            TxnRequest(
                compare: [Compare(result: .equal, target: .create, key: key, operand: .createRevision(revision))],
                success: [.deleteRange(DeleteRangeRequest(key: key))])
        ).header
    }

    func leader(_ fields: ProtoFields, _ recipes: KeyRecipes) async throws(EtcdError) -> ProtoFieldWriter {
        let prefix = fields.bytes(1) + Array("/".utf8)
        let current = try await recipes.firstCreated(prefix)
        guard let kv = current.kvs.first else { throw Self.noLeader }
        var response = header(current.header)
        response.keyValue(2, kv)
        return response
    }

    /// The leader now (or, with none, the first one elected), then each of its proclamations,
    /// then the next leader's, until the client goes away.
    func observe(_ name: Bytes, _ recipes: KeyRecipes, _ responses: GRPCResponseWriter) async throws(EtcdError) {
        let prefix = name + Array("/".utf8)
        var sent: KeyValue?
        while true {
            var next: (ResponseHeader, KeyValue)?
            var sawNoLeader = false
            try await recipes.waitUntil { () async throws(EtcdError) -> Bool in
                let current = try await recipes.firstCreated(prefix)
                guard let kv = current.kvs.first else {
                    sawNoLeader = true
                    return false
                }
                guard kv != sent else { return false }
                var header = current.header
                // As etcd's observer: a leader found by its read carries that read's revision; one
                // it waited for, or a new value of the same leader (a watch event), the write's.
                if sawNoLeader || kv.createRevision == sent?.createRevision { header.revision = kv.modRevision }
                next = (header, kv)
                return true
            }
            guard let (header, kv) = next else { continue }
            var response = self.header(header)
            response.keyValue(2, kv)
            do {
                try await responses.write(response.bytes)
            } catch {
                return  // the stream is gone
            }
            sent = kv
        }
    }

    private func header(_ header: ResponseHeader) -> ProtoFieldWriter {
        identity.responseStartingWith(header)
    }
}
