import KineCore
import KineSQL
import Synchronization

@testable import KineStore

/// An in-memory kine table that answers the statements the WatchHub runs (by statement name),
/// so watch logic is tested without PostgreSQL. One write per revision, row id = revision, as
/// the Writer lays out single-key writes; an HA promotion's bump leaves a gap in the ids.
final class FakeKineTable: SQLClient {
    typealias Row = StoredRow

    private struct State {
        var rows: [Row] = []
        var compacted: Int64 = 0
        var failing = false
        var statementNames: [String] = []
    }

    private let state = Mutex(State())

    /// Puts `key` = `value`; returns the revision.
    @discardableResult
    func put(_ key: String, _ value: String) -> Int64 {
        write(key) { latest, id in
            let live = latest.map { !$0.deleted } ?? false
            return Row(
                fakeID: id, name: Array(key.utf8), created: !live, deleted: false, createRevision: live ? latest?.createRevision ?? id : id,
                prevRevision: latest?.id ?? 0, value: Array(value.utf8), version: (live ? latest?.version ?? 0 : 0) + 1)
        }
    }

    /// Deletes `key`; returns the revision.
    @discardableResult
    func delete(_ key: String) -> Int64 {
        write(key) { latest, id in
            Row(
                fakeID: id, name: Array(key.utf8), created: false, deleted: true, createRevision: latest?.createRevision ?? 0,
                prevRevision: latest?.id ?? 0, value: [], version: 0)
        }
    }

    private func write(_ key: String, _ make: (Row?, Int64) -> Row) -> Int64 {
        state.withLock { state in
            let latest = state.rows.last { $0.name == Array(key.utf8) }
            let row = make(latest, (state.rows.last?.id ?? 0) + 1)
            state.rows.append(row)
            return row.id
        }
    }

    func compact(through revision: Int64) { state.withLock { $0.compacted = revision } }

    /// A copy of this table (a follower's replica), which goes its own way from now on.
    func replica() -> FakeKineTable {
        let copy = FakeKineTable()
        let (rows, compacted) = state.withLock { ($0.rows, $0.compacted) }
        copy.state.withLock { state in
            state.rows = rows
            state.compacted = compacted
        }
        return copy
    }

    /// A promotion's bump: the hidden epoch marker (a `gap-` tombstone) at `target`, compacted
    /// through it; the next write gets `target + 1`.
    func bump(to target: Int64) {
        state.withLock { state in
            state.rows.append(
                Row(
                    fakeID: target, name: Array("gap-kine-ha-epoch".utf8), created: false, deleted: true, createRevision: 0,
                    prevRevision: 0,
                    value: [], version: 0))
            state.compacted = target
        }
    }
    /// While set, every statement fails as a broken connection would.
    func setFailing(_ failing: Bool) { state.withLock { $0.failing = failing } }
    var statementNames: [String] { state.withLock { $0.statementNames } }

    func pipeline(_ statements: [SQLStatement]) async throws(SQLError) -> [SQLResult] {
        let answer: Result<[SQLResult], SQLError> = state.withLock { state in
            state.statementNames += statements.map { $0.name ?? "?" }
            if state.failing { return .failure(SQLError(kind: .connection, message: "fake: connection refused")) }
            var results: [SQLResult] = []
            for statement in statements {
                guard let result = Self.answer(statement, state: state) else {
                    return .failure(SQLError(kind: .server, message: "fake: no answer for \(statement.name ?? statement.sql)"))
                }
                results.append(result)
            }
            return .success(results)
        }
        return try answer.get()
    }

    func withSession<T: Sendable>(_ body: (any SQLSession) async throws -> T) async throws -> T {
        throw SQLError(kind: .cancelled, message: "fake: no sessions")
    }

    private static func answer(_ statement: SQLStatement, state: State) -> SQLResult? {
        let newest = state.rows.last?.id ?? 0
        let parameters = statement.parameters
        switch statement.name ?? "" {
        case "header":
            return SQLResult(rows: [SQLRow(columns: [int(newest), int(state.compacted), int(newest)])])
        case "barrier":
            // The newest id, the auth generation (no auth row: 0) and the compacted revision.
            return SQLResult(rows: [SQLRow(columns: [int(newest), int(0), int(state.compacted)])])
        case "watch_tail":
            guard case .int64(let after) = parameters[0], case .int64(let limit) = parameters[1] else { return nil }
            return changes(state.rows.filter { $0.id > after }, limit: limit, all: state.rows)
        case let name where name.hasPrefix("watch_history_"):
            guard case .int64(let from) = parameters[0], case .int64(let toID) = parameters[1], case .int64(let limit) = parameters[2],
                let range = range(shape: name.dropFirst("watch_history_".count), parameters.dropFirst(3))
            else { return nil }
            let rows = state.rows.filter { $0.id >= from && $0.id <= toID && range.contains($0.name) }
            return changes(rows, limit: limit, all: state.rows)
        default:
            return nil
        }
    }

    private static func range(shape: Substring, _ parameters: ArraySlice<SQLValue>) -> KeyRange? {
        let names = parameters.compactMap { value -> Bytes? in
            if case .text(let text) = value { return Array(text.utf8) }
            return nil
        }
        switch shape {
        case "s": return names.first.map { .single($0) }
        case "b": return names.count == 2 ? .interval(start: names[0], end: names[1]) : nil
        case "u": return names.first.map { .interval(start: $0, end: nil) }
        default: return nil
        }
    }

    /// Rows in `StoreSQL.changeColumns` layout: the row, then the row it superseded (or NULLs).
    private static func changes(_ rows: [Row], limit: Int64, all: [Row]) -> SQLResult {
        SQLResult(
            rows: rows.prefix(Int(limit)).map { row in
                let previous = row.prevRevision > 0 ? all.first { $0.id == row.prevRevision } : nil
                return SQLRow(columns: columns(row) + (previous.map(columns) ?? Array(repeating: nil, count: StoreSQL.rowColumnCount)))
            })
    }

    private static func columns(_ row: Row) -> [[UInt8]?] {
        [
            int(row.id), row.name, int(row.created ? 1 : 0), int(row.deleted ? 1 : 0), int(row.createRevision), int(row.prevRevision),
            row.value, int(row.version), int(row.modRevision), int(row.lease),
        ]
    }

    /// An int8 cell as PostgreSQL sends it in binary: 8 bytes, big-endian.
    private static func int(_ value: Int64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) }
    }
}

extension StoredRow {
    /// A row for a test: by default one write per revision, so the row id is the revision.
    init(
        fakeID id: Int64, name: Bytes, created: Bool, deleted: Bool, createRevision: Int64, prevRevision: Int64, value: Bytes,
        version: Int64,
        revision: Int64? = nil
    ) {
        self.init(
            id: id, name: name, created: created, deleted: deleted, createRevision: createRevision, prevRevision: prevRevision,
            value: value, version: version, modRevision: revision ?? id, lease: 0)
    }
}
