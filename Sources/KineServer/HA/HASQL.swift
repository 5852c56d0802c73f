import Foundation
import KineHA
import KineSQL

/// Every SQL statement of the HA controller, in one place (docs/ha.md explains each step and the
/// PostgreSQL behaviour it relies on).
///
/// Statements that PostgreSQL refuses inside a transaction block (CREATE/DROP SUBSCRIPTION,
/// ALTER SYSTEM) are sent one per pipeline call. Identifiers come from `HANames` (sanitised
/// node names); literals are quoted with `literal`.
enum HASQL {
    /// `kine_ha` (the leader's term, epoch and fork) and `kine_ha_split_writes` (rows a node had
    /// that its leader lacked when it resynced, saved on the leader: nothing is silently dropped)
    /// are published; `kine_ha_local` (this node's role, term, highest revision served, pause) is
    /// not. (`kine_ha_saved`, HA schema 1's local table of such rows, is left as it was.)
    static let schema = [
        """
        CREATE TABLE IF NOT EXISTS kine_ha (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), \
        term bigint NOT NULL, leader text NOT NULL, epoch_start bigint NOT NULL, fork_id bigint NOT NULL, \
        promoted_at timestamptz NOT NULL DEFAULT now())
        """,
        """
        CREATE TABLE IF NOT EXISTS kine_ha_local (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), \
        node text NOT NULL, role text NOT NULL, term bigint NOT NULL, leader text NOT NULL, \
        subscribed_term bigint NOT NULL DEFAULT 0, highest_served bigint NOT NULL DEFAULT 0, \
        schema_version integer NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())
        """,
        "ALTER TABLE kine_ha_local ADD COLUMN IF NOT EXISTS paused_until_ms bigint NOT NULL DEFAULT 0",
        "ALTER TABLE kine_ha_local ADD COLUMN IF NOT EXISTS pause_set_ms bigint NOT NULL DEFAULT 0",
        "ALTER TABLE kine_ha_local ADD COLUMN IF NOT EXISTS last_write_ms bigint NOT NULL DEFAULT 0",
        """
        CREATE TABLE IF NOT EXISTS kine_ha_split_writes (node text NOT NULL, id bigint NOT NULL, fork_id bigint NOT NULL, \
        leader_term bigint NOT NULL, reason text NOT NULL, saved_at timestamptz NOT NULL DEFAULT now(), name text NOT NULL, \
        created integer NOT NULL, deleted integer NOT NULL, create_revision bigint NOT NULL, prev_revision bigint NOT NULL, \
        lease bigint NOT NULL, value bytea, committed_at timestamptz, PRIMARY KEY (node, id))
        """,
    ]

    static let publicationName = "kine_pub"

    /// Truncate is left out on purpose: a resync's TRUNCATE must never reach anyone subscribed
    /// to the truncating node.
    static let createPublication = """
        CREATE PUBLICATION \(publicationName) FOR TABLE \(publishedTables.joined(separator: ", ")) \
        WITH (publish = 'insert, update, delete')
        """

    /// What the follower copies: the kine table, leases, alarms, the auth store and the HA bookkeeping.
    static let publishedTables = ["kine", "kine_leases", "kine_alarms", "kine_auth", "kine_ha", "kine_ha_split_writes"]

    /// Published tables a publication made by an older kine lacks (schema 1 had no split
    /// writes, schema 2 no alarms).
    static let unpublishedTables = SQLQuery(
        SQLStatement(
            """
            SELECT t FROM unnest(ARRAY['\(publishedTables.joined(separator: "','"))']) AS t WHERE t NOT IN \
            (SELECT tablename FROM pg_publication_tables WHERE pubname = '\(publicationName)')
            """)
    ) { result in result.rows.map { $0.text(0) } }

    static func publish(_ table: String) -> String { "ALTER PUBLICATION \(publicationName) ADD TABLE \(table)" }

    static let publicationExists = SQLQuery.scalar(SQLStatement("SELECT count(*) FROM pg_publication WHERE pubname = '\(publicationName)'"))

    /// What a bad setup would break, checked at start: `wal_level`, and superuser (PostgreSQL 15
    /// needs it for CREATE SUBSCRIPTION). Columns as `HASetup` reads them.
    static let setupCheck = SQLQuery.firstRow(
        SQLStatement(
            """
            SELECT current_setting('wal_level'), (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), current_user
            """)
    ) { $0.map(HASetup.init(row:)) }

    /// Columns as `HALocalRecord` reads them.
    static let readLocalState = SQLQuery.firstRow(
        SQLStatement(
            """
            SELECT role, term, leader, highest_served, paused_until_ms, pause_set_ms, last_write_ms FROM kine_ha_local
            """), HALocalRecord.init(row:))

    static func writePause(untilUnixMilliseconds: Int64, setUnixMilliseconds: Int64) -> SQLStatement {
        SQLStatement(
            "UPDATE kine_ha_local SET paused_until_ms = $1, pause_set_ms = $2, updated_at = now()",
            [.int64(untilUnixMilliseconds), .int64(setUnixMilliseconds)])
    }

    static func raiseLastWrite(_ unixMilliseconds: Int64) -> SQLStatement {
        SQLStatement("UPDATE kine_ha_local SET last_write_ms = $1 WHERE last_write_ms < $1", [.int64(unixMilliseconds)])
    }

    static func writeLocalState(node: String, role: String, term: UInt64, leader: String, schemaVersion: UInt32) -> SQLStatement {
        SQLStatement(
            """
            INSERT INTO kine_ha_local (singleton, node, role, term, leader, schema_version) VALUES (true, $1, $2, $3, $4, $5) \
            ON CONFLICT (singleton) DO UPDATE SET node = $1, role = $2, term = $3, leader = $4, schema_version = $5, updated_at = now()
            """, [.text(node), .text(role), .int64(Int64(term)), .text(leader), .int64(Int64(schemaVersion))])
    }

    static func setSubscribedTerm(_ term: UInt64) -> SQLStatement {
        SQLStatement("UPDATE kine_ha_local SET subscribed_term = $1, updated_at = now()", [.int64(Int64(term))])
    }

    static func raiseHighestServed(_ revision: Int64) -> SQLStatement {
        SQLStatement("UPDATE kine_ha_local SET highest_served = $1 WHERE highest_served < $1", [.int64(revision)])
    }

    /// One round's view of the local database: newest id, whether it has data, the subscription
    /// (`enabled`, every table `r`), the follower's replication (streaming and within 16 MB, as
    /// pg_auto_failover requires before sync), the term the copy came from, and how many tables
    /// the subscription holds. Columns as `LocalProbe.init(row:)` reads them; nil when the database did not answer a row.
    static func localProbe(subscription: String, followerApplication: String) -> SQLQuery<LocalProbe?> {
        SQLQuery.firstRow(
            SQLStatement(
                """
                SELECT (SELECT COALESCE(MAX(id), 0) FROM kine), \
                (SELECT s.subenabled FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid \
                 WHERE s.subname = $1 AND d.datname = current_database()), \
                (SELECT count(*) >= 3 AND COALESCE(bool_and(r.srsubstate = 'r'), false) FROM pg_subscription_rel r \
                 JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1), \
                COALESCE((SELECT bool_or(state = 'streaming' AND pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn) < 16777216) \
                 FROM pg_stat_replication WHERE application_name = $2), false), \
                (SELECT subscribed_term FROM kine_ha_local), \
                EXISTS (SELECT 1 FROM kine WHERE name <> 'compact_rev_key' AND name <> '/registry/health'), \
                (SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1)
                """, [.text(subscription), .text(followerApplication)])
        ) { $0.map(LocalProbe.init(row:)) }
    }

    /// Channel B: a round trip to the peer's database, with its newest id, this node's slot there
    /// and how many tables its publication has.
    static func peerProbe(slot: String) -> SQLQuery<PeerDatabaseProbe?> {
        SQLQuery.firstRow(
            SQLStatement(
                """
                SELECT (SELECT COALESCE(MAX(id), 0) FROM kine), \
                (SELECT COALESCE(wal_status, 'missing') FROM pg_replication_slots WHERE slot_name = $1), \
                (SELECT count(*) FROM pg_publication_tables WHERE pubname = '\(publicationName)')
                """, [.text(slot)])
        ) { $0.map(PeerDatabaseProbe.init(row:)) }
    }

    /// Either database's replicated epoch (the local one or the peer's), as `HAEpoch` reads it.
    static let epoch = SQLQuery.firstRow(SQLStatement("SELECT term, fork_id FROM kine_ha"), HAEpoch.init(row:))

    // MARK: Fence and replication settings

    static let fence = "ALTER SYSTEM SET default_transaction_read_only = on"
    static let unfence = "ALTER SYSTEM RESET default_transaction_read_only"
    static let reload = "SELECT pg_reload_conf()"

    /// Ends this database's kine store sessions (`application_name = 'kine'`, not the HA admin's):
    /// a demoted node's commits that still wait for a synchronous standby must fail, never be
    /// acknowledged once the wait is lifted.
    static let terminateStoreSessions = """
        SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
        WHERE datname = current_database() AND application_name = 'kine' AND pid <> pg_backend_pid()
        """

    static func synchronousStandbys(_ application: String?) -> String {
        guard let application else { return "ALTER SYSTEM SET synchronous_standby_names = ''" }
        return "ALTER SYSTEM SET synchronous_standby_names = \(literal("FIRST 1 (\"\(application)\")"))"
    }

    // MARK: Subscription

    static func subscriptionExists(_ name: String) -> SQLQuery<Int64> {
        .scalar(SQLStatement("SELECT count(*) FROM pg_subscription WHERE subname = $1", [.text(name)]))
    }

    /// Detaching never contacts the publisher (it may be dead): disable, forget the slot, drop.
    static func detachSubscription(_ name: String) -> [String] {
        [
            "ALTER SUBSCRIPTION \(name) DISABLE",
            "ALTER SUBSCRIPTION \(name) SET (slot_name = NONE)",
            "DROP SUBSCRIPTION \(name)",
        ]
    }

    static func enableSubscription(_ name: String) -> String { "ALTER SUBSCRIPTION \(name) ENABLE" }

    /// Subscribes the tables the publisher's publication gained since the subscription was made.
    static func refreshSubscription(_ name: String) -> String { "ALTER SUBSCRIPTION \(name) REFRESH PUBLICATION WITH (copy_data = true)" }

    /// `binary = true`: rows travel in PostgreSQL's binary form. A kine row's value is bytea,
    /// which the text form sends as hex (twice its size) that both sides encode and decode; both
    /// nodes have the same column types, which binary transfer needs.
    static func createSubscription(_ name: String, connection: String, slot: String) -> String {
        """
        CREATE SUBSCRIPTION \(name) CONNECTION \(literal(connection)) PUBLICATION \(publicationName) \
        WITH (copy_data = true, slot_name = \(literal(slot)), synchronous_commit = 'local', disable_on_error = true, binary = true)
        """
    }

    /// Inactive slots of a name (a follower's old slot on this node, or this node's on the leader).
    static func dropInactiveSlot(_ slot: String) -> SQLStatement {
        SQLStatement(
            "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active",
            [.text(slot)])
    }

    // MARK: Resync, reunion and promotion

    /// kine's own bookkeeping rows, which are nobody's writes: the promotion's epoch markers and
    /// Go kine's gap rows (`gap-…`), and the compaction mark.
    static let ownWrite = "name NOT LIKE 'gap-%' AND name <> 'compact_rev_key'"

    /// A reunion's view of one database: its term and fork, and the writes above `forkID`.
    static func writesAbove(_ forkID: Int64) -> SQLQuery<Int64> {
        .scalar(SQLStatement("SELECT count(*) FROM kine WHERE id > $1 AND \(ownWrite)", [.int64(forkID)]))
    }

    /// One batch of the rows this node wrote above the leader's fork (the commit time when
    /// `track_commit_timestamp` is on, else -1).
    static func rowsAbove(_ forkID: Int64, after: Int64, limit: Int) -> SQLQuery<[ForkedRow]> {
        SQLQuery(
            SQLStatement(
                """
                SELECT id, name, created, deleted, create_revision, prev_revision, lease, value, \
                CASE WHEN current_setting('track_commit_timestamp') = 'on' \
                 THEN COALESCE((extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000)::int8, -1) ELSE -1 END \
                FROM kine WHERE id > $1 AND id > $2 AND \(ownWrite) ORDER BY id LIMIT $3
                """, [.int64(forkID), .int64(after), .int64(Int64(limit))])
        ) { $0.rows.map(ForkedRow.init(row:)) }
    }

    /// Saves a batch of rows (from `rowsAbove`) into the leader's replicated split-writes table.
    static func saveSplitWrites(node: String, forkID: Int64, leaderTerm: UInt64, reason: String, rows: [ForkedRow]) -> SQLStatement {
        SQLStatement(
            """
            INSERT INTO kine_ha_split_writes (node, fork_id, leader_term, reason, id, name, created, deleted, create_revision, \
            prev_revision, lease, value, committed_at) \
            SELECT $1, $2, $3, $4, u.id, u.name, u.created, u.deleted, u.create_revision, u.prev_revision, u.lease, u.value, \
            CASE WHEN u.committed_ms < 0 THEN NULL ELSE to_timestamp(u.committed_ms / 1000.0) END \
            FROM unnest($5::int8[], $6::text[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::bytea[], $13::int8[]) \
            AS u(id, name, created, deleted, create_revision, prev_revision, lease, value, committed_ms) \
            ON CONFLICT (node, id) DO NOTHING
            """,
            [
                .text(node), .int64(forkID), .int64(Int64(leaderTerm)), .text(reason),
            ] + forkedRowArrays(rows))
    }

    /// The columns of `rows` as the arrays the INSERTs' `unnest` takes: id, name, created, deleted,
    /// create_revision, prev_revision, lease, value, commit time.
    private static func forkedRowArrays(_ rows: [ForkedRow]) -> [SQLValue] {
        [
            .int64Array(rows.map(\.id)), .textArray(rows.map(\.name)), .int64Array(rows.map(\.created)), .int64Array(rows.map(\.deleted)),
            .int64Array(rows.map(\.createRevision)), .int64Array(rows.map(\.prevRevision)), .int64Array(rows.map(\.lease)),
            .bytesArray(rows.map(\.value)), .int64Array(rows.map(\.committedUnixMilliseconds)),
        ]
    }

    /// Split writes this node holds (it won an earlier reunion), to carry to its leader before
    /// its copy is emptied: the record must outlive every resync.
    static func splitWritesAfter(node: String, id: Int64, limit: Int) -> SQLQuery<[HeldSplitWrite]> {
        SQLQuery(
            SQLStatement(
                """
                SELECT node, id, fork_id, leader_term, reason, name, created, deleted, create_revision, prev_revision, lease, value, \
                COALESCE((extract(epoch FROM committed_at) * 1000)::int8, -1) FROM kine_ha_split_writes \
                WHERE (node, id) > ($1, $2) ORDER BY node, id LIMIT $3
                """, [.text(node), .int64(id), .int64(Int64(limit))])
        ) { $0.rows.map(HeldSplitWrite.init(row:)) }
    }

    static func copySplitWrites(_ writes: [HeldSplitWrite]) -> SQLStatement {
        SQLStatement(
            """
            INSERT INTO kine_ha_split_writes (node, fork_id, leader_term, reason, id, name, created, deleted, create_revision, \
            prev_revision, lease, value, committed_at) \
            SELECT u.node, u.fork_id, u.leader_term, u.reason, u.id, u.name, u.created, u.deleted, u.create_revision, u.prev_revision, \
            u.lease, u.value, CASE WHEN u.committed_ms < 0 THEN NULL ELSE to_timestamp(u.committed_ms / 1000.0) END \
            FROM unnest($1::text[], $2::int8[], $3::int8[], $4::text[], $5::int8[], $6::text[], $7::int8[], $8::int8[], $9::int8[], \
            $10::int8[], $11::int8[], $12::bytea[], $13::int8[]) \
            AS u(node, fork_id, leader_term, reason, id, name, created, deleted, create_revision, prev_revision, lease, value, committed_ms) \
            ON CONFLICT (node, id) DO NOTHING
            """,
            [
                .textArray(writes.map(\.node)), .int64Array(writes.map(\.forkID)), .int64Array(writes.map(\.leaderTerm)),
                .textArray(writes.map(\.reason)),
            ] + forkedRowArrays(writes.map(\.row)))
    }

    static let splitWritesTableExists = SQLQuery.firstRow(SQLStatement("SELECT to_regclass('kine_ha_split_writes') IS NOT NULL")) {
        $0?.bool(0) ?? false
    }

    /// `kine ha split-writes list|export`, in the order the loser wrote them.
    static let listSplitWrites = SQLQuery(
        SQLStatement(
            """
            SELECT node, id, name, value, deleted, create_revision, prev_revision, lease, \
            (extract(epoch FROM committed_at) * 1000)::int8, (extract(epoch FROM saved_at) * 1000)::int8, fork_id, leader_term, reason \
            FROM kine_ha_split_writes ORDER BY node, id
            """)
    ) { result in
        result.rows.map { row in
            SplitWrite(
                node: row.text(0), revision: row.int64(1), key: row.text(2), value: row.bytes(3), deleted: row.int64(4) != 0,
                createRevision: row.int64(5), prevRevision: row.int64(6), lease: row.int64(7),
                committedUnixMilliseconds: row.optionalInt64(8),
                savedUnixMilliseconds: row.int64(9), forkID: row.int64(10), leaderTerm: row.int64(11), reason: row.text(12))
        }
    }

    static let emptyCopy = "TRUNCATE \(publishedTables.joined(separator: ", "))"

    static let localMaxID = SQLQuery.scalar(SQLStatement("SELECT COALESCE(MAX(id), 0) FROM kine"))

    /// The revision bump of a promotion, in one transaction (under the writers' lock): the hidden
    /// epoch marker at `T` (a Go-kine-style gap row: a tombstone named `gap-…` with no previous
    /// row, which ranges, counts and watches skip), the sequence, the compacted mark, every lease
    /// renewed to its full TTL (as etcd does on a leader change), and the replicated HA row.
    static func bump(to target: Int64, term: UInt64, node: String, forkID: Int64, lockKey: Int64) -> [SQLStatement] {
        let marker = "gap-kine-ha-epoch-\(term)-\(node)"
        return [
            SQLStatement("BEGIN"),
            SQLStatement("SELECT pg_advisory_xact_lock($1)", [.int64(lockKey)]),
            SQLStatement(
                """
                INSERT INTO kine (id, name, created, deleted, create_revision, prev_revision, lease, value, old_value) \
                VALUES ($1, $2, 0, 1, 0, 0, 0, NULL, NULL)
                """, [.int64(target), .text(marker)]),
            SQLStatement(
                """
                INSERT INTO kine (id, name, created, deleted, create_revision, prev_revision, lease, value, old_value, kv_version) \
                SELECT $1::int8 - 1, 'compact_rev_key', 1, 0, 0, 0, 0, ''::bytea, NULL, 1 \
                WHERE NOT EXISTS (SELECT 1 FROM kine WHERE name = 'compact_rev_key')
                """, [.int64(target)]),
            SQLStatement("UPDATE kine SET prev_revision = $1 WHERE name = 'compact_rev_key'", [.int64(target)]),
            SQLStatement("SELECT setval('kine_id_seq', $1)", [.int64(target)]),
            SQLStatement("UPDATE kine_leases SET expires_at = now() + make_interval(secs => ttl::float8)"),
            SQLStatement(
                """
                INSERT INTO kine_ha (singleton, term, leader, epoch_start, fork_id) VALUES (true, $1, $2, $3, $4) \
                ON CONFLICT (singleton) DO UPDATE SET term = $1, leader = $2, epoch_start = $3, fork_id = $4, promoted_at = now()
                """, [.int64(Int64(term)), .text(node), .int64(target), .int64(forkID)]),
            SQLStatement("COMMIT"),
        ]
    }

    /// A node that leads without a promotion (bootstrap) records its term, unless a row exists.
    static func claimLeadership(term: UInt64, node: String) -> SQLStatement {
        SQLStatement(
            """
            INSERT INTO kine_ha (singleton, term, leader, epoch_start, fork_id) VALUES (true, $1, $2, 0, 0) \
            ON CONFLICT (singleton) DO UPDATE SET term = $1, leader = $2
            """, [.int64(Int64(term)), .text(node)])
    }

    /// A SQL string literal.
    static func literal(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }
}
