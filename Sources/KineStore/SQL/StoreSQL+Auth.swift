import KineSQL

/// The auth store's table: one row holding the whole `AuthState` and its generation (+1 per
/// saved change; etcd's auth revision, which some changes leave alone, is inside the state). No
/// row yet reads as generation 0 with nothing in it (a database Go kine or an older kine wrote).
extension StoreSQL {
    static let createAuth = """
        CREATE TABLE IF NOT EXISTS kine_auth (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), \
        generation bigint NOT NULL, state bytea NOT NULL)
        """

    /// The auth generation as an SQL expression (writes compare it under the write lock).
    static let authGeneration = "COALESCE((SELECT generation FROM kine_auth), 0)"

    static let loadAuth = SQLQuery.firstRow(SQLStatement("SELECT generation, state FROM kine_auth", name: "auth_load")) { row in
        row.map { (generation: UInt64(bitPattern: $0.int64(0)), state: $0.bytes(1)) }
    }

    static let authGenerationQuery = SQLQuery.scalar(SQLStatement("SELECT \(authGeneration)", name: "auth_generation"))

    static func saveAuth(generation: UInt64, state: [UInt8]) -> SQLStatement {
        SQLStatement(
            """
            INSERT INTO kine_auth (singleton, generation, state) VALUES (true, $1, $2) \
            ON CONFLICT (singleton) DO UPDATE SET generation = EXCLUDED.generation, state = EXCLUDED.state
            """, [.int64(Int64(bitPattern: generation)), .bytes(state)], name: "auth_save")
    }

    /// The read barrier: the newest id, the auth generation and the compacted revision, from one
    /// snapshot.
    static let barrierQuery = SQLQuery.firstRow(
        SQLStatement("SELECT \(newestID), \(authGeneration), \(compactRevision)", name: "barrier")
    ) { row in
        BarrierReading(
            newestID: row?.int64(0) ?? 0, authGeneration: UInt64(bitPattern: row?.int64(1) ?? 0), compactRevision: row?.int64(2) ?? 0)
    }
}

/// What the read barrier saw.
struct BarrierReading: Sendable {
    var newestID: Int64
    var authGeneration: UInt64
    /// Another process's compaction is learnt here (the mark is an UPDATE the tail does not see).
    var compactRevision: Int64
}
