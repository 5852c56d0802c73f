import KineSQL

/// The auth store's table: one row holding the whole `AuthState` and its revision. No row yet
/// reads as revision 1 with nothing in it (a database Go kine or an older kine wrote).
extension StoreSQL {
    static let createAuth = """
        CREATE TABLE IF NOT EXISTS kine_auth (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), \
        revision bigint NOT NULL, state bytea NOT NULL)
        """

    /// The auth revision as an SQL expression (writes compare it under the write lock).
    static let authRevision = "COALESCE((SELECT revision FROM kine_auth), 1)"

    static let loadAuth = SQLQuery.firstRow(SQLStatement("SELECT revision, state FROM kine_auth", name: "auth_load")) { row in
        row.map { (revision: UInt64(bitPattern: $0.int64(0)), state: $0.bytes(1)) }
    }

    static let authRevisionQuery = SQLQuery.scalar(SQLStatement("SELECT \(authRevision)", name: "auth_revision"))

    static func saveAuth(revision: UInt64, state: [UInt8]) -> SQLStatement {
        SQLStatement(
            """
            INSERT INTO kine_auth (singleton, revision, state) VALUES (true, $1, $2) \
            ON CONFLICT (singleton) DO UPDATE SET revision = EXCLUDED.revision, state = EXCLUDED.state
            """, [.int64(Int64(bitPattern: revision)), .bytes(state)], name: "auth_save")
    }

    /// The read barrier: the newest id and the auth revision, from one snapshot.
    static let barrierQuery = SQLQuery.firstRow(
        SQLStatement("SELECT \(newestID), \(authRevision)", name: "barrier")
    ) { row in BarrierReading(newestID: row?.int64(0) ?? 0, authRevision: UInt64(bitPattern: row?.int64(1) ?? 1)) }
}

/// What the read barrier saw.
struct BarrierReading: Sendable {
    var newestID: Int64
    var authRevision: UInt64
}
