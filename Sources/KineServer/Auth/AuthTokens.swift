import KineCore
import Synchronization

/// etcd's simple tokens: 16 random letters, ".", a counter; held by this process, each valid
/// for `ttl` after its last use (etcd's `--auth-token-ttl`).
///
/// A token stands for its user as long as the user exists with the password it logged in with
/// and auth stays on: deleting the user, changing its password or turning auth off (on any
/// node: the check reads the current auth state) makes it "invalid auth token", as in etcd.
final class AuthTokens: Sendable {
    private struct Entry: Sendable {
        var user: String
        var passwordHash: Bytes
        var expires: ContinuousClock.Instant
    }

    private struct State: Sendable {
        var entries: [String: Entry] = [:]
        var counter: UInt64 = 0
    }

    static let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
    static let defaultTTL: Duration = .seconds(300)

    let ttl: Duration
    private let state = Mutex(State())

    init(ttl: Duration = AuthTokens.defaultTTL) {
        self.ttl = ttl
    }

    /// A new token for `user` (whose password was just checked).
    func issue(for user: AuthUser) -> String {
        var random = SystemRandomNumberGenerator()
        let prefix = String(
            decoding: (0..<16).map { _ in Self.letters[Int.random(in: 0..<Self.letters.count, using: &random)] }, as: UTF8.self)
        let now = ContinuousClock.now
        return state.withLock { state in
            // Expired tokens go when new ones come, so the table stays as large as the live set.
            state.entries = state.entries.filter { $0.value.expires > now }
            state.counter += 1
            let token = "\(prefix).\(state.counter)"
            state.entries[token] = Entry(user: user.name, passwordHash: user.passwordHash, expires: now + ttl)
            return token
        }
    }

    /// The user `token` stands for under `auth`, renewing it; nil when it is not (or no longer) valid.
    func user(for token: String, in auth: AuthState) -> String? {
        let now = ContinuousClock.now
        return state.withLock { state -> String? in
            guard let entry = state.entries[token] else { return nil }
            guard auth.enabled, entry.expires > now, let user = auth.users[entry.user], user.passwordHash == entry.passwordHash else {
                state.entries[token] = nil
                return nil
            }
            state.entries[token]?.expires = now + ttl
            return entry.user
        }
    }
}
