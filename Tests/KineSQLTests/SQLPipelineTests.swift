import Testing

@testable import KineSQL

@Suite("SQLPipeline: results read by slot, not by position")
struct SQLPipelineTests {
    /// Answers each statement with one row holding its own position, and 10 × position affected rows.
    struct EchoClient: SQLClient {
        func pipeline(_ statements: [SQLStatement]) async throws(SQLError) -> [SQLResult] {
            statements.indices.map { index in
                SQLResult(
                    rows: [SQLRow(columns: [(0..<8).map { UInt8(truncatingIfNeeded: Int64(index) >> (56 - 8 * $0)) }])],
                    affectedRows: index * 10)
            }
        }

        func withSession<T: Sendable>(_ body: (any SQLSession) async throws -> T) async throws -> T {
            throw SQLError(kind: .cancelled, message: "no sessions")
        }
    }

    @Test("Each slot decodes its own statement's result, whatever was added around it")
    func slots() async throws {
        var pipeline = SQLPipeline([SQLStatement("BEGIN")])
        let first = pipeline.add(SQLQuery.scalar(SQLStatement("SELECT a")))
        pipeline.add(SQLStatement("SELECT ignored"))
        let changed = pipeline.add(SQLQuery.affectedRows(SQLStatement("UPDATE t")))
        let row = pipeline.add(SQLQuery.firstRow(SQLStatement("SELECT b")) { $0.map { "row \($0.int64(0))" } ?? "none" })
        pipeline.add(SQLStatement("COMMIT"))
        #expect(pipeline.statements.map(\.sql) == ["BEGIN", "SELECT a", "SELECT ignored", "UPDATE t", "SELECT b", "COMMIT"])
        let results = try await EchoClient().run(pipeline)
        #expect(results[first] == 1)
        #expect(results[changed] == 30)
        #expect(results[row] == "row 4")
    }

    @Test("A single query runs alone and decodes its result")
    func single() async throws {
        let answer = try await EchoClient().run(SQLQuery(SQLStatement("SELECT 1")) { $0.rows.count })
        #expect(answer == 1)
    }

    @Test("A scalar with no row answers 0")
    func emptyScalar() {
        #expect(SQLQuery.scalar(SQLStatement("SELECT")).decode(SQLResult()) == 0)
    }
}
