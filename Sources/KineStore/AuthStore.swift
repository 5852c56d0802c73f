public import KineCore
import KineSQL
import Synchronization

/// The auth store of one database (`kine_auth`), cached in memory.
///
/// Every kine process serving the database (and an HA pair's follower, whose store is the
/// leader's database) keeps a copy. The copy is never trusted to be current for long:
/// - a linearizable read learns the auth generation (`AuthState.generation`, +1 per saved
///   change) from its read barrier, and a newer one makes the copy reload before the permission
///   check (`state(atLeast:)`), so a revoke acknowledged anywhere is seen by every read that
///   starts after it;
/// - a write carries the generation its check used, and the Writer compares it with the table's
///   under the write lock, which auth changes take too: a write checked against an older state
///   fails with "auth: revision in header is old" (etcd's rule) and the copy reloads.
public final class AuthStore: Sendable {
    private struct Cache: Sendable {
        var state: AuthState?
        /// The newest generation seen in the table (barrier, Writer); above `state`'s: reload.
        var newestSeen: UInt64 = 0
        var permissions: [String: UserPermissions] = [:]
    }

    private let client: any SQLClient
    private let cache = Mutex(Cache())

    init(client: any SQLClient) {
        self.client = client
    }

    /// The cached state, loading it the first time or when the table is known to be newer.
    public func current() async throws(EtcdError) -> AuthState {
        let (state, stale) = cache.withLock { cache in
            (cache.state, cache.state.map { $0.generation < cache.newestSeen } ?? true)
        }
        if let state, !stale { return state }
        return try await reload()
    }

    /// A state at least as new as `generation` (what a read barrier saw).
    public func state(atLeast generation: UInt64) async throws(EtcdError) -> AuthState {
        noteGeneration(generation)
        return try await current()
    }

    /// The table's state now (auth management reads, Authenticate).
    public func fresh() async throws(EtcdError) -> AuthState { try await reload() }

    /// The table holds `generation`: a copy below it reloads before its next use.
    func noteGeneration(_ generation: UInt64) {
        cache.withLock { $0.newestSeen = max($0.newestSeen, generation) }
    }

    /// Merged permissions of `user` in `state`, kept until the state changes.
    public func permissions(of user: AuthUser, in state: AuthState) -> UserPermissions {
        let cached = cache.withLock { cache -> UserPermissions? in
            guard cache.state?.generation == state.generation else { return nil }
            return cache.permissions[user.name]
        }
        if let cached { return cached }
        let permissions = state.permissions(of: user)
        cache.withLock { cache in
            if cache.state?.generation == state.generation { cache.permissions[user.name] = permissions }
        }
        return permissions
    }

    private func reload() async throws(EtcdError) -> AuthState {
        let row: (generation: UInt64, state: [UInt8])?
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
            if let current = cache.state, current.generation > state.generation { return }
            if cache.state?.generation != state.generation { cache.permissions = [:] }
            cache.state = state
            cache.newestSeen = max(cache.newestSeen, state.generation)
        }
    }

    static func decode(_ row: (generation: UInt64, state: [UInt8])?) throws(EtcdError) -> AuthState {
        guard let row else { return AuthState() }
        do {
            return try AuthState(decoding: row.state, generation: row.generation)
        } catch {
            throw EtcdError(.internal, "kine: \(error)")
        }
    }

    /// Runs `change` on the table's state in one transaction under the write lock (so writes
    /// checked against the old state cannot commit after it), saving the result as the next
    /// generation when it changed anything. `change` sees the authoritative state: admin checks
    /// belong in it.
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
                var statements: [SQLStatement] = []
                let after = state.encoded()
                if after != (loaded?.state ?? AuthState().encoded()) {
                    state.generation += 1
                    statements.append(StoreSQL.saveAuth(generation: state.generation, state: after))
                }
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
