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

/// The cells of a block of rows in one buffer: the adapter copies a whole result in two
/// allocations instead of one array per cell (a 500-row page has 5 000 cells).
public final class SQLRowBlock: Sendable {
    public let columnCount: Int
    /// Every cell's bytes, back to back.
    let bytes: [UInt8]
    /// Per cell: start offset in `bytes`, or -1 for NULL; then the cell's length.
    let bounds: [Int]

    /// `bounds` holds two numbers per cell (start, length), row after row; start -1 is NULL.
    public init(columnCount: Int, bytes: [UInt8], bounds: [Int]) {
        self.columnCount = columnCount
        self.bytes = bytes
        self.bounds = bounds
    }

    public var rowCount: Int { columnCount == 0 ? 0 : bounds.count / (2 * columnCount) }
}

/// One result row; columns are addressed by position, in the order of the SELECT list.
/// Column values come back in binary format and are exposed as raw bytes, decoded on demand.
public struct SQLRow: Sendable {
    private let block: SQLRowBlock
    private let row: Int

    public init(block: SQLRowBlock, row: Int) {
        self.block = block
        self.row = row
    }

    /// A row of its own (tests, small results); `nil` is SQL NULL.
    public init(columns: [[UInt8]?]) {
        var bytes: [UInt8] = []
        var bounds: [Int] = []
        for cell in columns {
            if let cell {
                bounds.append(bytes.count)
                bounds.append(cell.count)
                bytes.append(contentsOf: cell)
            } else {
                bounds.append(-1)
                bounds.append(0)
            }
        }
        self.init(block: SQLRowBlock(columnCount: columns.count, bytes: bytes, bounds: bounds), row: 0)
    }

    public var count: Int { block.columnCount }

    private func bounds(_ index: Int) -> (start: Int, length: Int) {
        let slot = (row * block.columnCount + index) * 2
        return (block.bounds[slot], block.bounds[slot + 1])
    }

    public func isNull(_ index: Int) -> Bool { bounds(index).start < 0 }

    /// A cell's raw bytes, `nil` for NULL.
    public func cell(_ index: Int) -> [UInt8]? {
        let (start, length) = bounds(index)
        guard start >= 0 else { return nil }
        return Array(block.bytes[start..<start + length])
    }

    /// An `int8`, `int4`, `int2` or `bool` column as Int64 (NULL → 0).
    public func int64(_ index: Int) -> Int64 {
        let (start, length) = bounds(index)
        guard start >= 0 else { return 0 }
        var result: Int64 = 0
        for offset in start..<start + length { result = (result << 8) | Int64(block.bytes[offset]) }
        // Sign-extend 4- and 2-byte integers.
        switch length {
        case 4: return Int64(Int32(truncatingIfNeeded: result))
        case 2: return Int64(Int16(truncatingIfNeeded: result))
        default: return result
        }
    }

    public func optionalInt64(_ index: Int) -> Int64? { isNull(index) ? nil : int64(index) }

    public func bool(_ index: Int) -> Bool {
        let (start, length) = bounds(index)
        return start >= 0 && length > 0 && block.bytes[start] != 0
    }

    /// A `bytea` or `text` column's bytes (NULL → empty).
    public func bytes(_ index: Int) -> [UInt8] { cell(index) ?? [] }

    public func text(_ index: Int) -> String {
        let (start, length) = bounds(index)
        guard start >= 0 else { return "" }
        return String(decoding: block.bytes[start..<start + length], as: UTF8.self)
    }
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
