import KineCore
import KineHTTP2
import KineStore

/// Who a call acts as, and whether it may: etcd's per-request auth (`AuthInfoFromCtx`, the
/// `Is…Permitted` checks), shared by every service.
struct AuthGate: Sendable {
    let tokens: AuthTokens
    /// etcd's `--bcrypt-cost`.
    let bcryptCost: Int

    init(tokens: AuthTokens = AuthTokens(), bcryptCost: Int = PasswordHasher.defaultCost) {
        self.tokens = tokens
        self.bcryptCost = bcryptCost
    }

    /// The token a call carries: gRPC metadata `token`, or `authorization` (the gateway's header,
    /// as etcd's gateway forwards it).
    func token(_ context: GRPCCallContext) -> String? {
        context.metadata["token"] ?? context.metadata["authorization"]
    }

    /// The caller's user: the token's; without a token, the common name of the client's
    /// certificate (etcd's rule with client certificates on; the gateway's calls carry none);
    /// nil when the call carries neither. A token that is not valid is etcd's "invalid auth
    /// token" (even with auth off, as in etcd).
    func user(_ context: GRPCCallContext, in state: AuthState) throws(EtcdError) -> String? {
        guard let token = token(context) else { return context.peerCommonName }
        guard let user = tokens.user(for: token, in: state) else { throw .invalidAuthToken }
        return user
    }

    /// The permission check of a call that needs `requirements` (none: only the token is
    /// checked, as for every request etcd puts through raft).
    func check(_ context: GRPCCallContext, _ requirements: [AuthRequirement], auth: AuthStore) -> KineStore.Authorization {
        { state throws(EtcdError) in try self.authorize(context, requirements, in: state, auth: auth) }
    }

    /// `check`, run at once against the store's current auth state (calls that reach no Writer:
    /// their token, admin or lease checks).
    func authorize(_ context: GRPCCallContext, _ requirements: [AuthRequirement], store: KineStore) async throws(EtcdError) {
        try authorize(context, requirements, in: try await store.auth.current(), auth: store.auth)
    }

    /// `check`, run at once against `state`.
    func authorize(_ context: GRPCCallContext, _ requirements: [AuthRequirement], in state: AuthState, auth: AuthStore) throws(EtcdError) {
        // Auth off and nothing to validate: the common case costs no lookups.
        if !state.enabled, context.metadata.isEmpty || token(context) == nil { return }
        let user = try self.user(context, in: state)
        try state.authorize(user, requirements) { account in auth.permissions(of: account, in: state) }
    }

    /// etcd refuses to attach a lease, or revoke it, for a user that may not write every key
    /// already attached to it (it could not delete them otherwise). Reads the keys only when
    /// that check can refuse (auth on, caller not root).
    func leaseKeyRequirements(_ lease: Int64, context: GRPCCallContext, store: KineStore) async throws(EtcdError) -> [AuthRequirement] {
        guard lease != 0 else { return [] }
        let state = try await store.auth.current()
        guard state.enabled, !state.isAdmin(try user(context, in: state)) else { return [] }
        return try await store.keysOfLease(lease).map { .write(key: $0, rangeEnd: []) }
    }
}
