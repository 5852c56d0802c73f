import KineHA
import KineSQL

/// Every SQL statement of the HA controller, in one place (docs/ha.md explains each step; the
/// facts behind them are in shared/reference/ha.md §2 and §6).
///
/// Statements that PostgreSQL refuses inside a transaction block (CREATE/DROP SUBSCRIPTION,
/// ALTER SYSTEM) are sent one per pipeline call. Identifiers come from `HANames` (sanitised
/// node names); literals are quoted with `literal`.
enum HASQL {
    /// `kine_ha` is published (the leader's term and epoch reach the follower); `kine_ha_local`
    /// (this node's role, term, highest revision served) and `kine_ha_saved` (rows a node had
    /// that its leader lacked when it resynced: nothing is silently dropped) are not.
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
        """
        CREATE TABLE IF NOT EXISTS kine_ha_saved (saved_at timestamptz NOT NULL DEFAULT now(), reason text NOT NULL, \
        leader_term bigint NOT NULL, id bigint NOT NULL, name text, created integer, deleted integer, create_revision bigint, \
        prev_revision bigint, lease integer, value bytea, kv_revision bigint, kv_lease bigint)
        """,
    ]

    static let publicationName = "kine_pub"

    /// Truncate is left out on purpose: a resync's TRUNCATE must never reach anyone subscribed
    /// to the truncating node.
    static let createPublication = """
        CREATE PUBLICATION \(publicationName) FOR TABLE kine, kine_leases, kine_ha WITH (publish = 'insert, update, delete')
        """

    static let publicationExists = "SELECT count(*) FROM pg_publication WHERE pubname = '\(publicationName)'"

    /// What a bad setup would break, checked at start: `wal_level`, superuser (PostgreSQL 15
    /// needs it for CREATE SUBSCRIPTION), the server version.
    static let setupCheck = """
        SELECT current_setting('wal_level'), (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), \
        current_setting('server_version_num')::int, current_user
        """

    static let readLocalState = """
        SELECT role, term, leader, subscribed_term, highest_served, schema_version FROM kine_ha_local
        """

    static func writeLocalState(node: String, role: String, term: UInt64, leader: String, schemaVersion: UInt32) -> SQLStatement {
        SQLStatement("""
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
    /// pg_auto_failover requires before sync), and the term the copy came from.
    static func localProbe(subscription: String, followerApplication: String) -> SQLStatement {
        SQLStatement("""
            SELECT (SELECT COALESCE(MAX(id), 0) FROM kine), \
            (SELECT s.subenabled FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid \
             WHERE s.subname = $1 AND d.datname = current_database()), \
            (SELECT count(*) >= 3 AND COALESCE(bool_and(r.srsubstate = 'r'), false) FROM pg_subscription_rel r \
             JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1), \
            COALESCE((SELECT bool_or(state = 'streaming' AND pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn) < 16777216) \
             FROM pg_stat_replication WHERE application_name = $2), false), \
            (SELECT subscribed_term FROM kine_ha_local), \
            (SELECT count(*) > 2 FROM (SELECT 1 FROM kine LIMIT 3) AS rows)
            """, [.text(subscription), .text(followerApplication)])
    }

    /// Channel B: a round trip to the peer's database, with its newest id and this node's slot there.
    static func peerProbe(slot: String) -> SQLStatement {
        SQLStatement("""
            SELECT (SELECT COALESCE(MAX(id), 0) FROM kine), \
            (SELECT COALESCE(wal_status, 'missing') FROM pg_replication_slots WHERE slot_name = $1)
            """, [.text(slot)])
    }

    static let peerEpoch = "SELECT term, leader, epoch_start, fork_id FROM kine_ha"

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

    static func subscriptionExists(_ name: String) -> SQLStatement {
        SQLStatement("SELECT count(*) FROM pg_subscription WHERE subname = $1", [.text(name)])
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

    static func createSubscription(_ name: String, connection: String, slot: String) -> String {
        """
        CREATE SUBSCRIPTION \(name) CONNECTION \(literal(connection)) PUBLICATION \(publicationName) \
        WITH (copy_data = true, slot_name = \(literal(slot)), synchronous_commit = 'local', disable_on_error = true)
        """
    }

    /// Inactive slots of a name (a follower's old slot on this node, or this node's on the leader).
    static func dropInactiveSlot(_ slot: String) -> SQLStatement {
        SQLStatement(
            "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active",
            [.text(slot)])
    }

    // MARK: Resync and promotion

    /// Rows this node has above the leader's fork point, kept for an operator before the copy is emptied.
    static func saveRowsAbove(_ forkID: Int64, leaderTerm: UInt64, reason: String) -> SQLStatement {
        SQLStatement("""
            INSERT INTO kine_ha_saved (reason, leader_term, id, name, created, deleted, create_revision, prev_revision, lease, value, \
            kv_revision, kv_lease) SELECT $2, $3, id, name, created, deleted, create_revision, prev_revision, lease, value, kv_revision, \
            kv_lease FROM kine WHERE id > $1
            """, [.int64(forkID), .text(reason), .int64(Int64(leaderTerm))])
    }

    static let emptyCopy = "TRUNCATE kine, kine_leases, kine_ha"

    static let localMaxID = "SELECT COALESCE(MAX(id), 0) FROM kine"

    /// The revision bump of a promotion, in one transaction (under the writers' lock): the hidden
    /// epoch marker at `T` (a Go-kine-style gap row: a tombstone named `gap-…` with no previous
    /// row, which ranges, counts and watches skip), the sequence, the compacted mark, every lease
    /// renewed to its full TTL (as etcd does on a leader change), and the replicated HA row.
    static func bump(to target: Int64, term: UInt64, node: String, forkID: Int64, lockKey: Int64) -> [SQLStatement] {
        let marker = "gap-kine-ha-epoch-\(term)-\(node)"
        return [
            SQLStatement("BEGIN"),
            SQLStatement("SELECT pg_advisory_xact_lock($1)", [.int64(lockKey)]),
            SQLStatement("""
                INSERT INTO kine (id, name, created, deleted, create_revision, prev_revision, lease, value, old_value) \
                VALUES ($1, $2, 0, 1, 0, 0, 0, NULL, NULL)
                """, [.int64(target), .text(marker)]),
            SQLStatement("""
                INSERT INTO kine (id, name, created, deleted, create_revision, prev_revision, lease, value, old_value, kv_version) \
                SELECT $1::int8 - 1, 'compact_rev_key', 1, 0, 0, 0, 0, ''::bytea, NULL, 1 \
                WHERE NOT EXISTS (SELECT 1 FROM kine WHERE name = 'compact_rev_key')
                """, [.int64(target)]),
            SQLStatement("UPDATE kine SET prev_revision = $1 WHERE name = 'compact_rev_key'", [.int64(target)]),
            SQLStatement("SELECT setval('kine_id_seq', $1)", [.int64(target)]),
            SQLStatement("UPDATE kine_leases SET expires_at = now() + make_interval(secs => ttl::float8)"),
            SQLStatement("""
                INSERT INTO kine_ha (singleton, term, leader, epoch_start, fork_id) VALUES (true, $1, $2, $3, $4) \
                ON CONFLICT (singleton) DO UPDATE SET term = $1, leader = $2, epoch_start = $3, fork_id = $4, promoted_at = now()
                """, [.int64(Int64(term)), .text(node), .int64(target), .int64(forkID)]),
            SQLStatement("COMMIT"),
        ]
    }

    /// A node that leads without a promotion (bootstrap) records its term, unless a row exists.
    static func claimLeadership(term: UInt64, node: String) -> SQLStatement {
        SQLStatement("""
            INSERT INTO kine_ha (singleton, term, leader, epoch_start, fork_id) VALUES (true, $1, $2, 0, 0) \
            ON CONFLICT (singleton) DO UPDATE SET term = $1, leader = $2
            """, [.int64(Int64(term)), .text(node)])
    }

    static let localEpoch = "SELECT term FROM kine_ha"

    /// A SQL string literal.
    static func literal(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }
}
