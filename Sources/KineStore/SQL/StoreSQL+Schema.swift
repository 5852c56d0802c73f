import KineSQL

/// The kine tables' DDL (`Schema`).
///
/// The table, its sequence and its six indexes are Go kine's (v0.13+ DDL), so either program
/// can open a database the other wrote. What etcd needs beyond kine's columns is added as
/// nullable columns Go kine ignores: `kv_version` (the key's etcd version) and `kv_revision`
/// (the row's etcd revision, NULL when it equals `id`; a write that changes several keys has
/// one revision but one row, with its own id, per key), an index to map revisions to ids,
/// `kv_lease` (the attached etcd lease), the table `kine_leases` (lease TTLs and deadlines) and the
/// table `kine_alarms` (etcd's alarms).
extension StoreSQL {
    static let createTables = [
        """
        CREATE TABLE IF NOT EXISTS kine (id BIGSERIAL PRIMARY KEY, name text COLLATE "C", created INTEGER, \
        deleted INTEGER, create_revision BIGINT, prev_revision BIGINT, lease INTEGER, value bytea, old_value bytea)
        """,
        "CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name)",
        "CREATE INDEX IF NOT EXISTS kine_name_id_index ON kine (name,id)",
        "CREATE INDEX IF NOT EXISTS kine_id_deleted_index ON kine (id,deleted)",
        "CREATE INDEX IF NOT EXISTS kine_prev_revision_index ON kine (prev_revision)",
        "CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision_uindex ON kine (name, prev_revision)",
        "CREATE INDEX IF NOT EXISTS kine_list_query_index on kine(name, id DESC, deleted)",
        "ALTER TABLE kine ADD COLUMN IF NOT EXISTS kv_version BIGINT",
        "ALTER TABLE kine ADD COLUMN IF NOT EXISTS kv_revision BIGINT",
        "CREATE INDEX IF NOT EXISTS kine_revision_id_index ON kine ((COALESCE(kv_revision, id)), id)",
        "ALTER TABLE kine ADD COLUMN IF NOT EXISTS kv_lease BIGINT",
        "CREATE INDEX IF NOT EXISTS kine_kv_lease_index ON kine (kv_lease) WHERE kv_lease IS NOT NULL",
        "CREATE TABLE IF NOT EXISTS kine_leases (id BIGINT PRIMARY KEY, ttl BIGINT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)",
        "CREATE INDEX IF NOT EXISTS kine_leases_expires_index ON kine_leases (expires_at)",
        createAlarms,
        createAuth,
    ].map { SQLStatement($0) }

    /// Go kine's opt-in migrations (`KINE_SCHEMA_MIGRATION`): 1 → BIGINT ids, 2 → `text COLLATE "C"` names.
    static let migrations = [
        [
            "ALTER TABLE kine ALTER COLUMN id SET DATA TYPE BIGINT, ALTER COLUMN create_revision SET DATA TYPE BIGINT, ALTER COLUMN prev_revision SET DATA TYPE BIGINT",
            "ALTER SEQUENCE kine_id_seq AS BIGINT",
        ],
        [#"ALTER TABLE kine ALTER COLUMN name SET DATA TYPE TEXT COLLATE "C" USING name::TEXT COLLATE "C""#],
    ].map { $0.map { SQLStatement($0) } }

    /// The collation of `kine.name` ("" for the database default).
    static let nameCollation = SQLQuery.firstRow(
        SQLStatement(
            "SELECT COALESCE(collation_name, '') FROM information_schema.columns WHERE table_name = 'kine' AND column_name = 'name' AND table_schema = current_schema()"
        )
    ) { $0?.text(0) ?? "" }

    /// Go kine's bookkeeping row `compact_rev_key` (its `prev_revision` is the compacted
    /// revision), which takes revision 1 of a new database, so a fresh kine is at revision 1 with
    /// no keys, as a fresh etcd is; and leases for the keys Go kine wrote with a TTL (its `lease`
    /// column), whose id is that TTL, running from now, as Go kine itself restarts TTLs when it
    /// starts (kine#581). Go kine also writes a `/registry/health` key at start-up; kine does
    /// not (no client needs it: kube-apiserver's etcd check is a plain read), and serves a
    /// database that has one as it is.
    static let bookkeepingRows = [
        SQLStatement(insertIfMissing(name: "compact_rev_key", value: "''")),
        SQLStatement(
            """
            INSERT INTO kine_leases (id, ttl, expires_at) SELECT DISTINCT lease, lease, now() + make_interval(secs => lease::float8) \
            FROM kine WHERE lease > 0 AND kv_lease IS NULL ON CONFLICT (id) DO NOTHING
            """),
        SQLStatement("UPDATE kine SET kv_lease = lease WHERE lease > 0 AND kv_lease IS NULL"),
        sequenceToNewestID,
    ]

    /// A create row for `name` at the next revision, unless a row of that name exists.
    private static func insertIfMissing(name: String, value: String) -> String {
        """
        INSERT INTO kine (id, name, created, deleted, create_revision, prev_revision, lease, value, old_value, kv_version, kv_revision) \
        SELECT m.id + 1, '\(name)', 1, 0, m.rev + 1, 0, 0, \(value)::bytea, NULL, 1, NULLIF(m.rev + 1, m.id + 1) \
        FROM (SELECT COALESCE(MAX(id), 0) AS id, \(currentRevision) AS rev FROM kine) AS m \
        WHERE NOT EXISTS (SELECT 1 FROM kine WHERE name = '\(name)')
        """
    }
}
