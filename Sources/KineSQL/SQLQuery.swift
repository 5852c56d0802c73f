/// A statement with the decoder of its result, so callers read named values instead of rows and
/// columns by position.
public struct SQLQuery<Output>: Sendable {
    public var statement: SQLStatement
    public let decode: @Sendable (SQLResult) -> Output

    public init(_ statement: SQLStatement, decode: @escaping @Sendable (SQLResult) -> Output) {
        self.statement = statement
        self.decode = decode
    }

    /// A query answering one row, decoded by `row` (nil when the statement returned no row).
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
    fileprivate let index: Int
    fileprivate let decode: @Sendable (SQLResult) -> Output
}

/// Statements sent together as one pipeline (one round trip, `SQLClient.pipeline`), each query's
/// answer read back through the slot `add` returned for it.
public struct SQLPipeline: Sendable {
    public private(set) var statements: [SQLStatement] = []

    public init(_ statements: [SQLStatement] = []) {
        self.statements = statements
    }

    /// Adds a statement whose result nobody reads (BEGIN, a lock, COMMIT).
    public mutating func add(_ statement: SQLStatement) {
        statements.append(statement)
    }

    /// Adds a query; its answer is `results[slot]`.
    public mutating func add<Output>(_ query: SQLQuery<Output>) -> SQLSlot<Output> {
        statements.append(query.statement)
        return SQLSlot(index: statements.count - 1, decode: query.decode)
    }
}

/// The results of an `SQLPipeline`, read by slot.
public struct SQLPipelineResults: Sendable {
    private let results: [SQLResult]

    public init(_ results: [SQLResult]) {
        self.results = results
    }

    public subscript<Output>(slot: SQLSlot<Output>) -> Output {
        slot.decode(results[slot.index])
    }
}

extension SQLClient {
    public func run(_ pipeline: SQLPipeline) async throws(SQLError) -> SQLPipelineResults {
        SQLPipelineResults(try await self.pipeline(pipeline.statements))
    }

    /// One query, one round trip.
    public func run<Output>(_ query: SQLQuery<Output>) async throws(SQLError) -> Output {
        query.decode(try await pipeline([query.statement])[0])
    }
}

extension SQLSession {
    public func run(_ pipeline: SQLPipeline) async throws(SQLError) -> SQLPipelineResults {
        SQLPipelineResults(try await self.pipeline(pipeline.statements))
    }

    public func run<Output>(_ query: SQLQuery<Output>) async throws(SQLError) -> Output {
        query.decode(try await pipeline([query.statement])[0])
    }
}
