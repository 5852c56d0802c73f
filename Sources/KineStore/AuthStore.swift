public import KineCore
import KineSQL
import Synchronization

/// The auth store of one database (`kine_auth`), cached in memory.
///
/// Every kine process serving the database (and an HA pair's follower, whose store is the
/// leader's database) keeps a copy. The copy is never trusted to be current for long:
/// - a linearizable read learns the auth revision from its read barrier, and a newer one makes
///   the copy reload before the permission check (`state(atLeast:)`), so a revoke acknowledged
///   anywhere is seen by every read that starts after it;
/// - a write carries the revision its check used, and the Writer compares it with the table's
///   under the write lock, which auth changes take too: a write checked against an older state
///   fails with "auth: revision in header is old" (etcd's rule) and the copy reloads.
public final class AuthStore: Sendable {
    private struct Cache: Sendable {
        var state: AuthState?
        /// The newest revision seen in the table (barrier, Writer); above `state`'s: reload.
        var newestSeen: UInt64 = 0
        var permissions: [String: UserPermissions] = [:]
    }

    private let client: any SQLClient
    private let cache = Mutex(Cache())

    init(client: any SQLClient) {
        self.client = client
    }

    /// The cached state, loading it the first time.
    public func current() async throws(EtcdError) -> AuthState {
        let (state, stale) = cache.withLock { cache in
            (cache.state, cache.state.map { $0.revision < cache.newestSeen } ?? true)
        }
        if let state, !stale { return state }
        return try await reload()
    }

    /// A state at least as new as `revision` (what a read barrier saw).
    func state(atLeast revision: UInt64) async throws(EtcdError) -> AuthState {
        noteRevision(revision)
        return try await current()
    }

    /// The table's state now (auth management reads, Authenticate).
    public func fresh() async throws(EtcdError) -> AuthState { try await reload() }

    /// The table holds `revision`: a copy below it reloads before its next use.
    func noteRevision(_ revision: UInt64) {
        cache.withLock { $0.newestSeen = max($0.newestSeen, revision) }
    }

    /// Merged permissions of `user` in `state`, kept until the state changes.
    public func permissions(of user: AuthUser, in state: AuthState) -> UserPermissions {
        let cached = cache.withLock { cache -> UserPermissions? in
            guard cache.state?.revision == state.revision else { return nil }
            return cache.permissions[user.name]
        }
        if let cached { return cached }
        let permissions = state.permissions(of: user)
        cache.withLock { cache in
            if cache.state?.revision == state.revision { cache.permissions[user.name] = permissions }
        }
        return permissions
    }

    private func reload() async throws(EtcdError) -> AuthState {
        let row: (revision: UInt64, state: [UInt8])?
        do {
            row = try await client.run(StoreSQL.loadAuth)
        } catch {
            throw StoreError.etcdError(for: error)
        }
        let state = try Self.decode(row)
        install(state)
        return state
    }

    private func install(_ state: AuthState) {
        cache.withLock { cache in
            if let current = cache.state, current.revision > state.revision { return }
            if cache.state?.revision != state.revision { cache.permissions = [:] }
            cache.state = state
            cache.newestSeen = max(cache.newestSeen, state.revision)
        }
    }

    static func decode(_ row: (revision: UInt64, state: [UInt8])?) throws(EtcdError) -> AuthState {
        guard let row else { return AuthState() }
        do {
            return try AuthState(decoding: row.state, revision: row.revision)
        } catch {
            throw EtcdError(.internal, "kine: \(error)")
        }
    }

    /// Runs `change` on the table's state in one transaction under the write lock (so writes
    /// checked against the old state cannot commit after it), saving the result when the
    /// revision moved. `change` sees the authoritative state: admin checks belong in it.
    public func update<Output: Sendable>(
        _ change: @escaping @Sendable (inout AuthState) throws(EtcdError) -> Output
    ) async throws(EtcdError) -> Output {
        let outcome: Result<(Output, AuthState), EtcdError>
        do {
            outcome = try await client.withSession { session -> Result<(Output, AuthState), EtcdError> in
                var read = SQLPipeline([StoreSQL.begin, StoreSQL.lock])
                let slot = read.add(StoreSQL.loadAuth)
                let loaded = try await session.run(read)[slot]
                var state = AuthState()
                let changed = Result { () throws(EtcdError) -> Output in
                    state = try Self.decode(loaded)
                    return try change(&state)
                }
                guard case .success(let output) = changed else {
                    _ = try await session.pipeline([StoreSQL.rollback])
                    return changed.map { ($0, state) }
                }
                let before = loaded?.revision ?? AuthState().revision
                var statements: [SQLStatement] = []
                if state.revision != before { statements.append(StoreSQL.saveAuth(revision: state.revision, state: state.encoded())) }
                _ = try await session.pipeline(statements + [StoreSQL.commit])
                return .success((output, state))
            }
        } catch let error as SQLError {
            throw StoreError.etcdError(for: error)
        } catch {
            throw EtcdError(.unknown, "\(error)")
        }
        let (output, state) = try outcome.get()
        install(state)
        return output
    }
}
