/// A statement with the decoder of its result, so callers read named values instead of rows and
/// columns by position.
public struct SQLQuery<Output>: Sendable {
    public var statement: SQLStatement
    public let decode: @Sendable (SQLResult) -> Output

    @inlinable
    public init(_ statement: SQLStatement, decode: @escaping @Sendable (SQLResult) -> Output) {
        self.statement = statement
        self.decode = decode
    }

    /// A query answering one row, decoded by `row` (nil when the statement returned no row).
    @inlinable
    public static func firstRow(_ statement: SQLStatement, _ row: @escaping @Sendable (SQLRow?) -> Output) -> SQLQuery<Output> {
        SQLQuery(statement) { row($0.rows.first) }
    }
}

extension SQLQuery where Output == Int64 {
    /// A query whose answer is the first column of its first row (0 when there is none).
    public static func scalar(_ statement: SQLStatement) -> SQLQuery<Int64> {
        firstRow(statement) { $0?.int64(0) ?? 0 }
    }
}

extension SQLQuery where Output == Int {
    /// A query whose answer is the number of rows it changed.
    public static func affectedRows(_ statement: SQLStatement) -> SQLQuery<Int> {
        SQLQuery(statement) { $0.affectedRows }
    }
}

/// Where one query's result will be in a pipeline's results.
public struct SQLSlot<Output>: Sendable {
    @usableFromInline let index: Int
    @usableFromInline let decode: @Sendable (SQLResult) -> Output

    @inlinable
    init(index: Int, decode: @escaping @Sendable (SQLResult) -> Output) {
        self.index = index
        self.decode = decode
    }
}

/// Statements sent together as one pipeline (one round trip, `SQLClient.pipeline`), each query's
/// answer read back through the slot `add` returned for it.
public struct SQLPipeline: Sendable {
    @usableFromInline var added: [SQLStatement]
    public var statements: [SQLStatement] { added }

    public init(_ statements: [SQLStatement] = []) {
        added = statements
    }

    /// Adds a statement whose result nobody reads (BEGIN, a lock, COMMIT).
    @inlinable
    public mutating func add(_ statement: SQLStatement) {
        added.append(statement)
    }

    /// Adds a query; its answer is `results[slot]`.
    @inlinable
    public mutating func add<Output>(_ query: SQLQuery<Output>) -> SQLSlot<Output> {
        added.append(query.statement)
        return SQLSlot(index: added.count - 1, decode: query.decode)
    }
}

/// The results of an `SQLPipeline`, read by slot.
public struct SQLPipelineResults: Sendable {
    @usableFromInline let results: [SQLResult]

    public init(_ results: [SQLResult]) {
        self.results = results
    }

    @inlinable
    public subscript<Output>(slot: SQLSlot<Output>) -> Output {
        slot.decode(results[slot.index])
    }
}

extension SQLPipelineRunner {
    @inlinable
    public func run(_ pipeline: SQLPipeline) async throws(SQLError) -> SQLPipelineResults {
        SQLPipelineResults(try await self.pipeline(pipeline.statements))
    }

    /// One query, one round trip.
    @inlinable
    public func run<Output>(_ query: SQLQuery<Output>) async throws(SQLError) -> Output {
        query.decode(try await pipeline([query.statement])[0])
    }
}
