import Foundation
import KinePostgres
import KineSQL
import Testing

@Suite("PostgresClient", .enabled(if: TestDB.enabled, "set KINE_TEST_POSTGRES_URL"))
struct PostgresClientTests {
    @Test("every SQLValue round-trips through SELECT $1 in binary")
    func roundTrip() async throws {
        try await TestDB.withClient { client in
            let values: [SQLValue] = [
                .int64(0), .int64(-1), .int64(.min), .int64(.max), .int64(1 << 33),
                .bool(true), .bool(false),
                .text(""), .text("héllo ✓ /registry/pods"),
                .bytes([]), .bytes([0, 1, 0, 255, 0]),
                .int64Array([]), .int64Array([1, -2, .max]),
                .textArray([]), .textArray(["a", "", "ü"]),
                .bytesArray([]), .bytesArray([[0], nil, [], [1, 0, 2]]),
            ]
            let results = try await client.pipeline(values.map { SQLStatement("SELECT $1", [$0]) })
            #expect(results.count == values.count)
            for (value, result) in zip(values, results) {
                let row = try #require(result.rows.first)
                switch value {
                case .int64(let v): #expect(row.int64(0) == v)
                case .bool(let v): #expect(row.bool(0) == v)
                case .text(let v): #expect(row.text(0) == v)
                case .bytes(let v):
                    #expect(row.bytes(0) == v)
                    #expect(!row.isNull(0))
                case .int64Array(let v): #expect(row.int64Array(0) == v)
                case .textArray(let v): #expect(row.textArray(0) == v)
                case .bytesArray(let v): #expect(row.bytesArray(0) == v)
                case .null: break
                }
            }
            let nulls = try await client.query("SELECT $1::int8, $2::bytea, $3::text", [.null, .null, .null])
            #expect(nulls.rows[0].isNull(0) && nulls.rows[0].isNull(1) && nulls.rows[0].isNull(2))
            #expect(nulls.rows[0].optionalInt64(0) == nil)
        }
    }

    @Test("SQLRow.int64 decodes int2, int4, int8 and bool columns")
    func integerWidths() async throws {
        try await TestDB.withClient { client in
            let r = try await client.query(
                "SELECT (-7)::int2, (-70000)::int4, (-7000000000)::int8, true, 32767::int2, count(*) FROM generate_series(1, 3)")
            let row = r.rows[0]
            #expect(row.int64(0) == -7)
            #expect(row.int64(1) == -70000)
            #expect(row.int64(2) == -7_000_000_000)
            #expect(row.int64(3) == 1)
            #expect(row.int64(4) == 32767)
            #expect(row.int64(5) == 3)
        }
    }

    @Test("many statements in one pipeline, and affected rows")
    func manyStatements() async throws {
        try await TestDB.withClient { client in
            try await TestDB.withTable(client) { table in
                var statements = (0..<300).map {
                    SQLStatement("INSERT INTO \(table) (id, v) VALUES ($1, $2)", [.int64(Int64($0)), .text("v\($0)")])
                }
                statements.append(SQLStatement("SELECT count(*), sum(id)::int8 FROM \(table)"))
                statements.append(SQLStatement("UPDATE \(table) SET v = v || 'x' WHERE id < 10"))
                let results = try await client.pipeline(statements)
                #expect(results.count == 302)
                #expect(results[0].affectedRows == 1)
                #expect(results[300].rows[0].int64(0) == 300)
                #expect(results[300].rows[0].int64(1) == Int64(299 * 300 / 2))
                #expect(results[301].affectedRows == 10)
            }
        }
    }

    @Test("a named statement is prepared once per connection and reused")
    func preparedReuse() async throws {
        try await TestDB.withClient(options: .init(poolSize: 1)) { client in
            for i in 0..<5 {
                let r = try await client.query("SELECT $1::int8 * 2", [.int64(Int64(i))], name: "kine_test_double")
                #expect(r.rows[0].int64(0) == Int64(i * 2))
            }
            // Concurrent uses in one batch, including the very first one on a fresh name.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<50 {
                    group.addTask {
                        let r = try await client.query("SELECT $1::text || '!'", [.text("\(i)")], name: "kine_test_bang")
                        #expect(r.rows[0].text(0) == "\(i)!")
                    }
                }
                try await group.waitForAll()
            }
            let r = try await client.query(
                "SELECT count(*) FROM pg_prepared_statements WHERE name IN ('kine_test_double', 'kine_test_bang')")
            #expect(r.rows[0].int64(0) == 2)
            // A broken prepared statement reports the server's error, and does not poison the name
            // for other jobs.
            await #expect(throws: SQLError.self) {
                try await client.query("SELEC 1", name: "kine_test_broken")
            }
            let again = try await client.query("SELECT $1::int8 * 2", [.int64(21)], name: "kine_test_double")
            #expect(again.rows[0].int64(0) == 42)
        }
    }

    @Test("an error mid-pipeline: SQLSTATE and constraint, later statements aborted, connection usable")
    func errorMidPipeline() async throws {
        try await TestDB.withClient(options: .init(poolSize: 1)) { client in
            try await TestDB.withTable(client) { table in
                _ = try await client.query("INSERT INTO \(table) VALUES (1, 'a')")
                let insert = "INSERT INTO \(table) VALUES ($1, $2)"
                let outcomes = try await client.pipelineResults([
                    SQLStatement(insert, [.int64(2), .text("b")]),
                    SQLStatement(insert, [.int64(3), .text("a")]),
                    SQLStatement("SELECT 1"),
                    SQLStatement(insert, [.int64(4), .text("d")]),
                ])
                #expect(outcomes.count == 4)
                guard case .failure(let error) = outcomes[1] else {
                    Issue.record("expected a unique violation")
                    return
                }
                #expect(error.kind == .server)
                #expect(error.sqlState == "23505")
                #expect(error.isUniqueViolation)
                #expect(error.constraint == "\(table)_v_key")
                for index in [2, 3] {
                    if case .failure(let aborted) = outcomes[index] {
                        #expect(aborted.kind == .pipelineAborted)
                    } else {
                        Issue.record("statement \(index) should be aborted")
                    }
                }
                do throws(SQLError) {
                    _ = try await client.pipeline([SQLStatement(insert, [.int64(1), .text("z")])])
                    Issue.record("expected an error")
                } catch {
                    #expect(error.sqlState == "23505")
                    #expect(error.constraint == "\(table)_pkey")
                }
                // One sync per call: the failed call's first insert was rolled back with it.
                let count = try await client.query("SELECT count(*) FROM \(table)")
                #expect(count.rows[0].int64(0) == 1)

                // Failing and succeeding jobs batched together do not affect each other.
                let ok = try await withThrowingTaskGroup(of: Bool.self) { group in
                    for i in 0..<100 {
                        group.addTask {
                            let value = i % 2 == 0 ? "a" : "u\(i)"
                            do throws(SQLError) {
                                _ = try await client.query(insert, [.int64(Int64(100 + i)), .text(value)])
                                return true
                            } catch {
                                #expect(error.sqlState == "23505")
                                return false
                            }
                        }
                    }
                    var ok = 0
                    for try await success in group where success { ok += 1 }
                    return ok
                }
                #expect(ok == 50)
            }
        }
    }

    @Test("withSession rolls back when the body throws inside a transaction")
    func sessionRollback() async throws {
        struct Boom: Error {}
        try await TestDB.withClient(options: .init(poolSize: 1)) { client in
            try await TestDB.withTable(client) { table in
                await #expect(throws: Boom.self) {
                    try await client.withSession { session in
                        _ = try await session.pipeline([
                            SQLStatement("BEGIN"),
                            SQLStatement("INSERT INTO \(table) VALUES (1, 'a')"),
                        ])
                        _ = try await session.pipeline([SQLStatement("INSERT INTO \(table) VALUES (2, 'b')")])
                        throw Boom()
                    }
                }
                // A session whose transaction failed is also cleaned up.
                do {
                    _ = try await client.withSession { session in
                        _ = try await session.pipeline([SQLStatement("BEGIN"), SQLStatement("SELECT 1/0")])
                    }
                    Issue.record("expected division by zero")
                } catch let error as SQLError {
                    #expect(error.sqlState == "22012")
                }
                // Same (only) connection: a leftover transaction would still see its own rows.
                let r = try await client.query("SELECT count(*) FROM \(table)")
                #expect(r.rows[0].int64(0) == 0)
            }
        }
    }

    @Test("the Writer's two round trips: BEGIN, advisory lock and SELECT in one pipeline, then INSERT, setval, NOTIFY, COMMIT")
    func writerShape() async throws {
        try await TestDB.withClient { client in
            try await TestDB.withTable(client) { table in
                let seq = table + "_seq"
                _ = try await client.query("CREATE SEQUENCE \(seq)")
                let lockKey: Int64 = 0x6B696E65
                let committed = try await client.withSession { session in
                    var total = 0
                    for batch in 0..<3 {
                        let first = try await session.pipeline([
                            SQLStatement("BEGIN"),
                            SQLStatement("SELECT pg_advisory_xact_lock($1)", [.int64(lockKey)], name: "kine_test_lock"),
                            SQLStatement("SELECT coalesce(max(id), 0) FROM \(table)"),
                        ])
                        let next = first[2].rows[0].int64(0) + 1
                        let ids = (0..<4).map { next + Int64($0) }
                        let second = try await session.pipeline([
                            SQLStatement(
                                "INSERT INTO \(table) (id, v) SELECT * FROM unnest($1::int8[], $2::text[])",
                                [.int64Array(ids), .textArray(ids.map { "b\(batch)-\($0)" })]),
                            SQLStatement("SELECT setval('\(seq)', $1)", [.int64(ids[3])]),
                            SQLStatement("SELECT pg_notify('kine_test', $1)", [.text("\(ids[3])")]),
                            SQLStatement("COMMIT"),
                        ])
                        total += second[0].affectedRows
                    }
                    return total
                }
                #expect(committed == 12)
                let r = try await client.query("SELECT count(*), max(id) FROM \(table)")
                #expect(r.rows[0].int64(0) == 12)
                #expect(r.rows[0].int64(1) == 12)
            }
        }
    }

    @Test("500 concurrent queries across the pool")
    func concurrency() async throws {
        try await TestDB.withClient(options: .init(poolSize: 4)) { client in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<500 {
                    group.addTask {
                        let r = try await client.query(
                            "SELECT $1::int8 + 1, pg_backend_pid()", [.int64(Int64(i))], name: i % 2 == 0 ? "kine_test_inc" : nil)
                        #expect(r.rows[0].int64(0) == Int64(i + 1))
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test("a killed backend: the next query succeeds on a new connection; an in-flight one fails with .connection")
    func reconnect() async throws {
        try await TestDB.withClient { admin in
            try await TestDB.withClient(options: .init(poolSize: 1)) { client in
                let pid = try await client.query("SELECT pg_backend_pid()").rows[0].int64(0)
                let killed = try await admin.query("SELECT pg_terminate_backend($1::int4, 5000)", [.int64(pid)])
                #expect(killed.rows[0].bool(0))
                let r = try await client.query("SELECT pg_backend_pid()")
                #expect(r.rows[0].int64(0) != pid)

                // In flight: the query is running when its backend is terminated.
                let newPID = r.rows[0].int64(0)
                async let sleeper: Result<[SQLResult], SQLError> = {
                    do throws(SQLError) { return .success(try await client.pipeline([SQLStatement("SELECT pg_sleep(10)")])) } catch {
                        return .failure(error)
                    }
                }()
                try await Task.sleep(for: .milliseconds(300))
                _ = try await admin.query("SELECT pg_terminate_backend($1::int4, 5000)", [.int64(newPID)])
                let outcome = await sleeper
                guard case .failure(let error) = outcome else {
                    Issue.record("expected a connection error")
                    return
                }
                #expect(error.kind == .connection)
                let after = try await client.query("SELECT 1")
                #expect(after.rows[0].int64(0) == 1)
            }
        }
    }

    @Test("queued jobs fail with .connection after the queue timeout when the server is unreachable")
    func unreachable() async throws {
        var config = try TestDB.configuration()
        config.host = "127.0.0.1"
        config.port = 1  // nothing listens there
        let client = PostgresClient(
            configuration: config, options: .init(poolSize: 1, queueTimeout: .milliseconds(300)), logger: TestDB.logger)
        let start = ContinuousClock.now
        do {
            _ = try await client.query("SELECT 1")
            Issue.record("expected a connection error")
        } catch {
            #expect(error.kind == .connection)
        }
        // A hang guard, not a timing claim: the job must fail instead of waiting for a server that
        // never comes (a loaded machine once took 5.5 s to get there).
        #expect(ContinuousClock.now - start < .seconds(30))
        await client.shutdown()
        do {
            _ = try await client.query("SELECT 1")
            Issue.record("expected cancelled")
        } catch {
            #expect(error.kind == .cancelled)
        }
    }

    @Test("repoint moves the pool to another database")
    func repoint() async throws {
        try await TestDB.withDatabase { first in
            try await TestDB.withDatabase { second in
                try await TestDB.withClient(first, options: .init(poolSize: 3)) { client in
                    #expect(try await client.query("SELECT current_database()").rows[0].text(0) == first.database)
                    client.repoint(to: second)
                    #expect(client.configuration.database == second.database)
                    try await withThrowingTaskGroup(of: String.self) { group in
                        for _ in 0..<30 {
                            group.addTask { try await client.query("SELECT current_database(), pg_sleep(0.01)").rows[0].text(0) }
                        }
                        for try await name in group { #expect(name == second.database) }
                    }
                }
            }
        }
    }

    @Test("ensureDatabaseExists creates a missing database once")
    func ensureDatabase() async throws {
        let name = TestDB.uniqueName("kine_ensure")
        let config = try TestDB.configuration().with(database: name)
        #expect(await PostgresClient.ensureDatabaseExists(config, logger: TestDB.logger))
        #expect(!(await PostgresClient.ensureDatabaseExists(config, logger: TestDB.logger)))
        try await TestDB.withClient(config) { client in
            let current = try await client.query("SELECT current_database()").rows[0].text(0)
            #expect(current == name)
        }
        await TestDB.drop(name)
        // Unreachable server: a warning, no throw.
        var bad = config
        bad.port = 1
        bad.host = "127.0.0.1"
        #expect(!(await PostgresClient.ensureDatabaseExists(bad, logger: TestDB.logger)))
    }

    @Test("notifications arrive, and resume after the listening backend is killed")
    func notifications() async throws {
        try await TestDB.withClient { client in
            let channel = TestDB.uniqueName("kine_chan")
            let stream = try await client.listen(channel: channel)
            var iterator = stream.makeAsyncIterator()
            _ = try await client.query("SELECT pg_notify($1, $2)", [.text(channel), .text("hello")])
            #expect(await iterator.next() == "hello")

            // Kill the listening backend; it reconnects and LISTENs again.
            _ = try await client.query(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE query = $1", [.text("LISTEN \"\(channel)\"")])
            // Keep notifying until one arrives through the new connection.
            let sender = Task {
                for i in 0..<100 {
                    _ = try? await client.query("SELECT pg_notify($1, $2)", [.text(channel), .text("again-\(i)")])
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            let next = await iterator.next()
            sender.cancel()
            #expect(next?.hasPrefix("again-") == true)
        }
    }
}

@Suite("PostgresClient sessions", .enabled(if: TestDB.enabled, "set KINE_TEST_POSTGRES_URL"))
struct PostgresSessionTests {
    @Test("a session whose backend dies fails with .connection until it ends; the pool recovers")
    func sessionBackendKilled() async throws {
        try await TestDB.withClient { admin in
            try await TestDB.withClient(options: .init(poolSize: 1)) { client in
                let kinds = try await client.withSession { session -> [SQLError.Kind] in
                    let pid = try await session.pipeline([SQLStatement("BEGIN"), SQLStatement("SELECT pg_backend_pid()")])[1].rows[0].int64(
                        0)
                    _ = try await admin.query("SELECT pg_terminate_backend($1::int4, 5000)", [.int64(pid)])
                    var kinds: [SQLError.Kind] = []
                    for _ in 0..<2 {
                        do throws(SQLError) {
                            _ = try await session.pipeline([SQLStatement("SELECT 1")])
                        } catch {
                            kinds.append(error.kind)
                        }
                    }
                    return kinds
                }
                #expect(kinds == [.connection, .connection])
                #expect(try await client.query("SELECT 7").rows[0].int64(0) == 7)
            }
        }
    }

    @Test("repoint while a session is reserved: the session loses its connection, the pool moves")
    func sessionRepoint() async throws {
        try await TestDB.withDatabase { other in
            try await TestDB.withClient(options: .init(poolSize: 2)) { client in
                let kind = try await client.withSession { session -> SQLError.Kind? in
                    _ = try await session.pipeline([SQLStatement("SELECT 1")])
                    client.repoint(to: other)
                    do throws(SQLError) {
                        _ = try await session.pipeline([SQLStatement("SELECT 1")])
                        return nil
                    } catch {
                        return error.kind
                    }
                }
                #expect(kind == .connection)
                let names = try await withThrowingTaskGroup(of: String.self) { group in
                    for _ in 0..<10 { group.addTask { try await client.query("SELECT current_database()").rows[0].text(0) } }
                    var names = Set<String>()
                    for try await name in group { names.insert(name) }
                    return names
                }
                #expect(names == [other.database])
            }
        }
    }

    @Test("shutdown while a session is open does not hang; later calls fail with .cancelled")
    func shutdownWithSession() async throws {
        let client = try await PostgresClient.connect(
            configuration: TestDB.configuration(), options: .init(poolSize: 1), logger: TestDB.logger)
        let kind = try await client.withSession { session -> SQLError.Kind? in
            _ = try await session.pipeline([SQLStatement("BEGIN")])
            await client.shutdown()
            do throws(SQLError) {
                _ = try await session.pipeline([SQLStatement("SELECT 1")])
                return nil
            } catch {
                return error.kind
            }
        }
        #expect(kind == .cancelled)
    }

    @Test("a cancelled task's queued job is removed and fails with .cancelled")
    func cancellation() async throws {
        try await TestDB.withClient(options: .init(poolSize: 1)) { client in
            // A session holds the only connection for as long as the test needs, so the queued job
            // cannot run before it is cancelled, however slow the machine is.
            try await client.withSession { _ in
                let queued = Task { () -> SQLError.Kind? in
                    do throws(SQLError) {
                        _ = try await client.query("SELECT 1")
                        return nil
                    } catch {
                        return error.kind
                    }
                }
                try await Task.sleep(for: .milliseconds(50))
                queued.cancel()
                #expect(await queued.value == .cancelled)
            }
        }
    }
}
