/// A parameter or column value exchanged with the database, in the types the kine table uses.
/// Parameters are sent in binary format (int8, bool, bytea, text and their arrays).
public enum SQLValue: Sendable, Hashable {
    case null
    case int64(Int64)
    case bool(Bool)
    case text(String)
    /// `bytea`.
    case bytes([UInt8])
    /// `int8[]`.
    case int64Array([Int64])
    /// `text[]`.
    case textArray([String])
    /// `bytea[]`, elements may be NULL.
    case bytesArray([[UInt8]?])
}

/// One result row; columns are addressed by position, in the order of the SELECT list.
/// Column values come back in binary format and are exposed as raw bytes, decoded on demand.
public struct SQLRow: Sendable {
    /// Raw column values; `nil` is SQL NULL.
    public var columns: [[UInt8]?]

    public init(columns: [[UInt8]?]) { self.columns = columns }

    public var count: Int { columns.count }
    public func isNull(_ index: Int) -> Bool { columns[index] == nil }

    /// An `int8`, `int4`, `int2` or `bool` column as Int64 (NULL → 0).
    public func int64(_ index: Int) -> Int64 {
        guard let raw = columns[index] else { return 0 }
        var result: Int64 = 0
        for byte in raw { result = (result << 8) | Int64(byte) }
        // Sign-extend 4- and 2-byte integers.
        switch raw.count {
        case 4: return Int64(Int32(truncatingIfNeeded: result))
        case 2: return Int64(Int16(truncatingIfNeeded: result))
        default: return result
        }
    }

    public func optionalInt64(_ index: Int) -> Int64? { columns[index] == nil ? nil : int64(index) }
    public func bool(_ index: Int) -> Bool { (columns[index]?.first ?? 0) != 0 }
    /// A `bytea` or `text` column's bytes (NULL → empty).
    public func bytes(_ index: Int) -> [UInt8] { columns[index] ?? [] }
    public func text(_ index: Int) -> String { String(decoding: columns[index] ?? [], as: UTF8.self) }
}

/// The rows and affected-row count of one statement.
public struct SQLResult: Sendable {
    public var rows: [SQLRow]
    /// Rows inserted/updated/deleted (`PQcmdTuples`), 0 for SELECT.
    public var affectedRows: Int

    public init(rows: [SQLRow] = [], affectedRows: Int = 0) {
        self.rows = rows
        self.affectedRows = affectedRows
    }
}

/// One statement of a pipeline. `name` identifies a prepared statement: the adapter prepares
/// each distinct name once per connection and reuses it; `nil` sends the text unprepared.
public struct SQLStatement: Sendable {
    public var name: String?
    public var sql: String
    public var parameters: [SQLValue]

    public init(_ sql: String, _ parameters: [SQLValue] = [], name: String? = nil) {
        self.sql = sql
        self.parameters = parameters
        self.name = name
    }
}
