import KineCore
import KineSQL

/// What watchers read: the table's tail in id order, and history of a key range.
extension StoreSQL {
    /// Columns of a change row `kv` and of the row it superseded `p` (for `prev_kv`).
    static let changeColumns = "\(rowColumns(alias: "kv")), \(rowColumns(alias: "p"))"

    /// Every row after id `$1`, oldest first, with the row each supersedes: the WatchHub's tail.
    static func changes(afterID: Int64, limit: Int64) -> SQLQuery<ChangePage> {
        changePage(
            SQLStatement(
                """
                SELECT \(changeColumns) FROM kine AS kv LEFT JOIN kine AS p ON p.id = kv.prev_revision \
                WHERE kv.id > $1 ORDER BY kv.id LIMIT $2
                """, [.int64(afterID), .int64(limit)], name: "watch_tail"))
    }

    /// Changes in a stored-name range with revision in `[fromRevision, …]` and id ≤ `$2`, oldest
    /// first: a watcher catching up from history.
    func changes(in range: KeyRange, fromRevision: Int64, toID: Int64, limit: Int64) -> SQLQuery<ChangePage> {
        let (qualified, params, shape) = predicate(range, first: 4, table: "kv")
        return Self.changePage(
            SQLStatement(
                """
                SELECT \(Self.changeColumns) FROM kine AS kv LEFT JOIN kine AS p ON p.id = kv.prev_revision \
                WHERE kv.id > \(Self.idBound("$1::int8 - 1")) AND kv.id <= $2 AND \(qualified) ORDER BY kv.id LIMIT $3
                """, [.int64(fromRevision), .int64(toID), .int64(limit)] + params, name: "watch_history_\(shape)"))
    }

    private static func changePage(_ statement: SQLStatement) -> SQLQuery<ChangePage> {
        SQLQuery(statement) { ChangePage(groups: ChangeEvents.group($0.rows), rowCount: $0.rows.count) }
    }

    /// A process that starts listening says so (`CommitNotices`).
    static func hello(from listener: Int32) -> SQLStatement {
        SQLStatement("SELECT pg_notify('kine', $1)", [.text(CommitNotices.hello(from: listener))], name: "watch_hello")
    }

    /// Sessions on this database, other than `listener`, that listen on `kine`, or whose activity
    /// this role may not see (they count, to be safe); 1 when activities are not tracked. And the
    /// share of the notification queue in use (`CommitNotices.queueUsage`).
    static func otherListeners(than listener: Int32) -> SQLQuery<(others: Int64, queueUsage: Double)> {
        .firstRow(
            SQLStatement(
                """
                SELECT CASE WHEN current_setting('track_activities')::bool THEN count(*) ELSE 1 END, \
                (pg_notification_queue_usage() * 1000000)::int8 FROM pg_stat_activity \
                WHERE datname = current_database() AND pid <> $1::int8 AND backend_type = 'client backend' \
                AND (query = 'LISTEN "kine"' OR query = '<insufficient privilege>')
                """, [.int64(Int64(listener))], name: "watch_listeners")
        ) { row in (others: row?.int64(0) ?? 1, queueUsage: Double(row?.int64(1) ?? 0) / 1_000_000) }
    }
}
