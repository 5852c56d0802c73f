import KineProto

/// etcd 3.5's gateway paths (`api/etcdserverpb/gw/rpc.pb.gw.go`), each a POST mapped onto one
/// gRPC method. Methods kine does not serve stay listed, so they answer as their gRPC call does
/// (UNIMPLEMENTED) instead of 404.
struct GatewayRoute: Sendable {
    enum Shape: Sendable {
        case unary
        /// The body is one request, the answer a stream (Snapshot).
        case serverStream
        /// The body is a sequence of requests, the answer a stream (Watch, LeaseKeepAlive).
        case bidirectional
    }

    let grpcPath: String
    let request: MessageSchema
    let response: MessageSchema
    let shape: Shape

    static let table: [String: GatewayRoute] = {
        let entries: [(String, String, String, Shape)] = [
            ("/v3/kv/range", "KV/Range", "Range", .unary),
            ("/v3/kv/put", "KV/Put", "Put", .unary),
            ("/v3/kv/deleterange", "KV/DeleteRange", "DeleteRange", .unary),
            ("/v3/kv/txn", "KV/Txn", "Txn", .unary),
            ("/v3/kv/compaction", "KV/Compact", "Compaction", .unary),
            ("/v3/watch", "Watch/Watch", "Watch", .bidirectional),
            ("/v3/lease/grant", "Lease/LeaseGrant", "LeaseGrant", .unary),
            ("/v3/lease/revoke", "Lease/LeaseRevoke", "LeaseRevoke", .unary),
            ("/v3/kv/lease/revoke", "Lease/LeaseRevoke", "LeaseRevoke", .unary),
            ("/v3/lease/keepalive", "Lease/LeaseKeepAlive", "LeaseKeepAlive", .bidirectional),
            ("/v3/lease/timetolive", "Lease/LeaseTimeToLive", "LeaseTimeToLive", .unary),
            ("/v3/kv/lease/timetolive", "Lease/LeaseTimeToLive", "LeaseTimeToLive", .unary),
            ("/v3/lease/leases", "Lease/LeaseLeases", "LeaseLeases", .unary),
            ("/v3/kv/lease/leases", "Lease/LeaseLeases", "LeaseLeases", .unary),
            ("/v3/cluster/member/add", "Cluster/MemberAdd", "MemberAdd", .unary),
            ("/v3/cluster/member/remove", "Cluster/MemberRemove", "MemberRemove", .unary),
            ("/v3/cluster/member/update", "Cluster/MemberUpdate", "MemberUpdate", .unary),
            ("/v3/cluster/member/list", "Cluster/MemberList", "MemberList", .unary),
            ("/v3/cluster/member/promote", "Cluster/MemberPromote", "MemberPromote", .unary),
            ("/v3/maintenance/alarm", "Maintenance/Alarm", "Alarm", .unary),
            ("/v3/maintenance/status", "Maintenance/Status", "Status", .unary),
            ("/v3/maintenance/defragment", "Maintenance/Defragment", "Defragment", .unary),
            // etcd maps Hash and HashKV to this one path; its mux takes the first, so HashKV is
            // unreachable over the gateway and this answers Hash.
            ("/v3/maintenance/hash", "Maintenance/Hash", "Hash", .unary),
            ("/v3/maintenance/snapshot", "Maintenance/Snapshot", "Snapshot", .serverStream),
            ("/v3/maintenance/transfer-leadership", "Maintenance/MoveLeader", "MoveLeader", .unary),
            ("/v3/maintenance/downgrade", "Maintenance/Downgrade", "Downgrade", .unary),
            ("/v3/auth/enable", "Auth/AuthEnable", "AuthEnable", .unary),
            ("/v3/auth/disable", "Auth/AuthDisable", "AuthDisable", .unary),
            ("/v3/auth/status", "Auth/AuthStatus", "AuthStatus", .unary),
            ("/v3/auth/authenticate", "Auth/Authenticate", "Authenticate", .unary),
            ("/v3/auth/user/add", "Auth/UserAdd", "AuthUserAdd", .unary),
            ("/v3/auth/user/get", "Auth/UserGet", "AuthUserGet", .unary),
            ("/v3/auth/user/list", "Auth/UserList", "AuthUserList", .unary),
            ("/v3/auth/user/delete", "Auth/UserDelete", "AuthUserDelete", .unary),
            ("/v3/auth/user/changepw", "Auth/UserChangePassword", "AuthUserChangePassword", .unary),
            ("/v3/auth/user/grant", "Auth/UserGrantRole", "AuthUserGrantRole", .unary),
            ("/v3/auth/user/revoke", "Auth/UserRevokeRole", "AuthUserRevokeRole", .unary),
            ("/v3/auth/role/add", "Auth/RoleAdd", "AuthRoleAdd", .unary),
            ("/v3/auth/role/get", "Auth/RoleGet", "AuthRoleGet", .unary),
            ("/v3/auth/role/list", "Auth/RoleList", "AuthRoleList", .unary),
            ("/v3/auth/role/delete", "Auth/RoleDelete", "AuthRoleDelete", .unary),
            ("/v3/auth/role/grant", "Auth/RoleGrantPermission", "AuthRoleGrantPermission", .unary),
            ("/v3/auth/role/revoke", "Auth/RoleRevokePermission", "AuthRoleRevokePermission", .unary),
        ]
        var table: [String: GatewayRoute] = [:]
        for (path, grpcPath, requestName, responseName, shape) in recipeRoutes {
            guard let request = ProtoSchemaSet.etcd[requestName], let response = ProtoSchemaSet.etcd[responseName] else { continue }
            table[path] = GatewayRoute(grpcPath: grpcPath, request: request, response: response, shape: shape)
        }
        for (path, method, message, shape) in entries {
            guard let request = ProtoSchemaSet.etcd["etcdserverpb.\(message)Request"],
                let response = ProtoSchemaSet.etcd["etcdserverpb.\(message)Response"]
            else { continue }
            table[path] = GatewayRoute(grpcPath: "/etcdserverpb.\(method)", request: request, response: response, shape: shape)
        }
        return table
    }()

    /// etcd's lock and election gateways (`v3lockpb`, `v3electionpb`): (path, gRPC path,
    /// request message, response message, shape).
    static let recipeRoutes: [(String, String, String, String, Shape)] = [
        ("/v3/lock/lock", "/v3lockpb.Lock/Lock", "v3lockpb.LockRequest", "v3lockpb.LockResponse", .unary),
        ("/v3/lock/unlock", "/v3lockpb.Lock/Unlock", "v3lockpb.UnlockRequest", "v3lockpb.UnlockResponse", .unary),
        (
            "/v3/election/campaign", "/v3electionpb.Election/Campaign", "v3electionpb.CampaignRequest", "v3electionpb.CampaignResponse",
            .unary
        ),
        (
            "/v3/election/proclaim", "/v3electionpb.Election/Proclaim", "v3electionpb.ProclaimRequest", "v3electionpb.ProclaimResponse",
            .unary
        ),
        ("/v3/election/leader", "/v3electionpb.Election/Leader", "v3electionpb.LeaderRequest", "v3electionpb.LeaderResponse", .unary),
        (
            "/v3/election/observe", "/v3electionpb.Election/Observe", "v3electionpb.LeaderRequest", "v3electionpb.LeaderResponse",
            .serverStream
        ),
        ("/v3/election/resign", "/v3electionpb.Election/Resign", "v3electionpb.ResignRequest", "v3electionpb.ResignResponse", .unary),
    ]
}
