internal import CLibPQ
import Foundation
import KineSQL
import Logging

/// The outcome of one statement of a pipeline.
typealias StatementOutcome = Result<SQLResult, SQLError>
/// The outcome of one job: per-statement outcomes, or a failure of the whole job (connection).
typealias JobOutcome = Result<[StatementOutcome], SQLError>

/// Transaction state of a connection, from `PQtransactionStatus`.
enum TransactionState: Sendable {
    case idle, active, inTransaction, failed, unknown
}

/// The single owner of one libpq `PGconn`.
///
/// Not `Sendable`: an instance is created, used and closed by exactly one thread (a pool worker,
/// the listener, or the one-off bootstrap thread), so the handle is never shared. `close()`
/// calls `PQfinish` deterministically; `deinit` is only a safety net.
final class PGConnection {
    private var conn: OpaquePointer?
    /// Target generation of the pool when this connection was opened (see `repoint`).
    let generation: Int
    let target: PostgresConfiguration
    let isPipelined: Bool
    private(set) var logger: Logger
    /// Prepared statement name → SQL, on this connection.
    private var prepared: [String: String] = [:]
    private let noticeSink: NoticeSink

    private init(conn: OpaquePointer, generation: Int, target: PostgresConfiguration, pipelined: Bool, logger: Logger) {
        self.conn = conn
        self.generation = generation
        self.target = target
        self.isPipelined = pipelined
        self.logger = logger
        self.noticeSink = NoticeSink(logger: logger)
        PQsetNoticeReceiver(conn, pgNoticeReceiver, Unmanaged.passUnretained(noticeSink).toOpaque())
    }

    deinit { close() }

    /// Opens a connection (blocking, up to libpq's `connect_timeout`).
    static func open(
        _ target: PostgresConfiguration, generation: Int, pipelined: Bool, logger: Logger
    ) -> Result<PGConnection, SQLError> {
        let parameters = target.connectionParameters
        let keys: [UnsafeMutablePointer<CChar>?] = parameters.map { strdup($0.0) } + [nil]
        let values: [UnsafeMutablePointer<CChar>?] = parameters.map { strdup($0.1) } + [nil]
        defer {
            for key in keys { free(key) }
            for value in values { free(value) }
        }
        let constKeys = keys.map { $0.map { UnsafePointer($0) } }
        let constValues = values.map { $0.map { UnsafePointer($0) } }
        guard let conn = PQconnectdbParams(constKeys, constValues, 0) else {
            return .failure(SQLError(kind: .connection, message: "libpq could not allocate a connection"))
        }
        guard PQstatus(conn) == CONNECTION_OK else {
            let message = PGResult.errorMessage(conn)
            PQfinish(conn)
            return .failure(SQLError(kind: .connection, message: message))
        }
        var connLogger = logger
        connLogger[metadataKey: PostgresMetadataKey.backendPID.rawValue] = "\(PQbackendPID(conn))"
        if pipelined, PQenterPipelineMode(conn) != 1 {
            let message = PGResult.errorMessage(conn)
            PQfinish(conn)
            return .failure(SQLError(kind: .connection, message: "cannot enter pipeline mode: \(message)"))
        }
        return .success(PGConnection(conn: conn, generation: generation, target: target, pipelined: pipelined, logger: connLogger))
    }

    func close() {
        if let conn {
            PQfinish(conn)
            self.conn = nil
        }
    }

    var isOpen: Bool { conn != nil }

    var backendPID: Int32 { conn.map { PQbackendPID($0) } ?? 0 }

    /// The socket descriptor, or -1.
    var socket: Int32 { conn.map { PQsocket($0) } ?? -1 }

    /// Reads whatever the server sent while idle (an admin shutdown, EOF) without blocking and
    /// reports whether the connection is still usable.
    ///
    /// An idle connection should have nothing to read. A terminated backend sends an error and
    /// then closes the socket; the socket stays readable until libpq has seen the EOF, so input
    /// is consumed while the socket is readable (a few rounds at most).
    func checkAlive() -> Bool {
        guard let conn, PQstatus(conn) == CONNECTION_OK else { return false }
        let socket = PQsocket(conn)
        guard socket >= 0 else { return false }
        for _ in 0..<4 {
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 0)
            if ready == 0 { return true }
            if ready < 0 { return errno == EINTR }
            if descriptor.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 && descriptor.revents & Int16(POLLIN) == 0 {
                return false
            }
            guard PQconsumeInput(conn) == 1, PQstatus(conn) == CONNECTION_OK else { return false }
        }
        // Still readable after several reads while idle: something unexpected is arriving.
        return false
    }

    var transactionState: TransactionState {
        guard let conn else { return .unknown }
        let status = PQtransactionStatus(conn)
        switch status {
        case PQTRANS_IDLE: return .idle
        case PQTRANS_ACTIVE: return .active
        case PQTRANS_INTRANS: return .inTransaction
        case PQTRANS_INERROR: return .failed
        default: return .unknown
        }
    }

    // MARK: - Pipelines

    private struct Prepare {
        var name: String
        var sql: String
        var types: [Oid]
    }

    /// Runs several jobs in one pipelined round trip: first a `PQsendPrepare` + sync for each
    /// statement name not yet prepared on this connection, then each job's statements followed by
    /// one `PQpipelineSync`, so an error in one job never aborts another. Results are read in
    /// order and each job is delivered as soon as its sync point arrives.
    ///
    /// Returns false if the connection broke; it is then closed and every undelivered job has been
    /// failed with `.connection`.
    @discardableResult
    func run(_ jobs: [[SQLStatement]], deliver: (Int, JobOutcome) -> Void) -> Bool {
        var delivered = [Bool](repeating: false, count: jobs.count)
        func finish(_ index: Int, _ outcome: JobOutcome) {
            delivered[index] = true
            deliver(index, outcome)
        }
        func breakAll(_ error: SQLError) -> Bool {
            logger.debug("connection broke", metadata: .init([.error: "\(error.message)"]))
            close()
            for index in jobs.indices where !delivered[index] { finish(index, .failure(error)) }
            return false
        }
        guard let conn, isPipelined else {
            return breakAll(SQLError(kind: .connection, message: "connection is closed"))
        }

        // Validate and collect the statements to prepare.
        var prepares: [Prepare] = []
        var preparing: [String: String] = [:]
        var sent = [Bool](repeating: false, count: jobs.count)
        for (index, job) in jobs.enumerated() {
            var problem: SQLError?
            for statement in job {
                if statement.parameters.count > Int(UInt16.max) {
                    problem = SQLError(kind: .server, sqlState: "54000", message: "too many parameters (\(statement.parameters.count))")
                }
                guard let name = statement.name else { continue }
                if let sql = prepared[name] ?? preparing[name] {
                    if sql != statement.sql {
                        problem = SQLError(
                            kind: .server, sqlState: "42P05", message: "prepared statement \"\(name)\" reused with different SQL")
                    }
                } else {
                    preparing[name] = statement.sql
                    prepares.append(
                        Prepare(name: name, sql: statement.sql, types: statement.parameters.map { Oid(PostgresBinary.encode($0).oid) }))
                }
            }
            if let problem {
                finish(index, .failure(problem))
            } else if job.isEmpty {
                finish(index, .success([]))
            } else {
                sent[index] = true
            }
        }

        // Send.
        for prepare in prepares {
            let ok = PQsendPrepare(conn, prepare.name, prepare.sql, Int32(prepare.types.count), prepare.types) == 1
            guard ok, PQpipelineSync(conn) == 1 else {
                return breakAll(SQLError(kind: .connection, message: PGResult.errorMessage(conn)))
            }
        }
        for (index, job) in jobs.enumerated() where sent[index] {
            for statement in job {
                guard send(statement, on: conn) else {
                    return breakAll(SQLError(kind: .connection, message: PGResult.errorMessage(conn)))
                }
            }
            guard PQpipelineSync(conn) == 1 else {
                return breakAll(SQLError(kind: .connection, message: PGResult.errorMessage(conn)))
            }
        }

        // Read the prepares.
        var prepareErrors: [String: SQLError] = [:]
        for prepare in prepares {
            switch readStatement(conn) {
            case .broken(let error): return breakAll(error)
            case .ok: prepared[prepare.name] = prepare.sql
            case .failed(let error), .aborted(let error): prepareErrors[prepare.name] = error
            }
            if let error = readSync(conn) { return breakAll(error) }
        }

        // Read the jobs.
        for (index, job) in jobs.enumerated() where sent[index] {
            var outcomes: [StatementOutcome] = []
            outcomes.reserveCapacity(job.count)
            for statement in job {
                switch readStatement(conn) {
                case .broken(let error): return breakAll(error)
                case .ok(let result): outcomes.append(.success(result))
                case .aborted(let error): outcomes.append(.failure(error))
                case .failed(var error):
                    if let name = statement.name, let prepareError = prepareErrors[name] { error = prepareError }
                    outcomes.append(.failure(error))
                }
            }
            if let error = readSync(conn) { return breakAll(error) }
            finish(index, .success(outcomes))
        }
        return true
    }

    /// Sends one statement with binary parameters and binary results.
    private func send(_ statement: SQLStatement, on conn: OpaquePointer) -> Bool {
        Self.withBinaryParameters(statement.parameters) { types, values, lengths, formats in
            let count = Int32(values.count)
            if let name = statement.name {
                return PQsendQueryPrepared(conn, name, count, values, lengths, formats, 1) == 1
            } else {
                return PQsendQueryParams(conn, statement.sql, count, types, values, lengths, formats, 1) == 1
            }
        } ?? false
    }

    /// Encodes `parameters` in PostgreSQL's binary format and calls `body` with libpq's parallel
    /// arrays (types, value pointers, lengths, formats). All bytes live in one buffer, and every
    /// pointer into it is used inside `body` only.
    private static func withBinaryParameters<R>(
        _ parameters: [SQLValue], _ body: ([Oid], [UnsafePointer<CChar>?], [Int32], [Int32]) -> R
    ) -> R? {
        var types: [Oid] = []
        var offsets: [Int] = []
        var lengths: [Int32] = []
        types.reserveCapacity(parameters.count)
        offsets.reserveCapacity(parameters.count)
        lengths.reserveCapacity(parameters.count)
        var buffer: [UInt8] = []
        for value in parameters {
            let encoded = PostgresBinary.encode(value)
            types.append(Oid(encoded.oid))
            if let bytes = encoded.bytes {
                offsets.append(buffer.count)
                lengths.append(Int32(clamping: bytes.count))
                buffer.append(contentsOf: bytes)
            } else {
                offsets.append(-1)
                lengths.append(0)
            }
        }
        // Never empty, so the base address is non-nil and empty values are non-NULL pointers.
        buffer.append(0)
        let formats = [Int32](repeating: 1, count: parameters.count)
        return buffer.withUnsafeBufferPointer { raw -> R? in
            guard let base = raw.baseAddress else { return nil }
            let values: [UnsafePointer<CChar>?] = offsets.map { offset in
                offset < 0 ? nil : UnsafeRawPointer(base + offset).assumingMemoryBound(to: CChar.self)
            }
            return body(types, values, lengths, formats)
        }
    }

    private enum Read {
        case ok(SQLResult)
        case failed(SQLError)
        case aborted(SQLError)
        case broken(SQLError)
    }

    /// Reads one statement's result and the NULL that ends it.
    private func readStatement(_ conn: OpaquePointer) -> Read {
        guard let result = PQgetResult(conn) else {
            return .broken(SQLError(kind: .connection, message: "unexpected end of results: \(PGResult.errorMessage(conn))"))
        }
        let read: Read
        let status = PQresultStatus(result)
        switch status {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            read = .ok(PGResult.decode(result))
        case PGRES_PIPELINE_ABORTED:
            read = .aborted(SQLError(kind: .pipelineAborted, message: "not run: an earlier statement in the pipeline failed"))
        case PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR:
            let error = PGResult.error(from: result, conn: conn)
            read = error.kind == .connection ? .broken(error) : .failed(error)
        case PGRES_PIPELINE_SYNC:
            read = .broken(SQLError(kind: .connection, message: "pipeline out of step: unexpected sync"))
        default:
            let name = String(cString: PQresStatus(status))
            read = .failed(SQLError(kind: .server, message: "unsupported result status \(name)"))
        }
        PQclear(result)
        if case .broken = read { return read }
        if PQstatus(conn) != CONNECTION_OK {
            return .broken(SQLError(kind: .connection, message: PGResult.errorMessage(conn)))
        }
        if let extra = PQgetResult(conn) {
            let status = PQresultStatus(extra)
            let error = status == PGRES_FATAL_ERROR ? PGResult.error(from: extra, conn: conn) : nil
            PQclear(extra)
            return .broken(
                SQLError(kind: .connection, message: error?.message ?? "pipeline out of step: more than one result for a statement")
            )
        }
        return read
    }

    /// Reads a sync point; returns an error if anything else arrived.
    private func readSync(_ conn: OpaquePointer) -> SQLError? {
        guard let result = PQgetResult(conn) else {
            return SQLError(kind: .connection, message: "expected a pipeline sync: \(PGResult.errorMessage(conn))")
        }
        let status = PQresultStatus(result)
        let error = status == PGRES_FATAL_ERROR ? PGResult.error(from: result, conn: conn) : nil
        PQclear(result)
        guard status == PGRES_PIPELINE_SYNC else {
            return SQLError(kind: .connection, message: error?.message ?? "pipeline out of step: expected a sync")
        }
        return nil
    }

    // MARK: - Plain (non-pipelined) execution, for the listener and bootstrap

    /// Runs one statement with `PQexecParams` (binary in and out) on a non-pipelined connection.
    func exec(_ sql: String, _ parameters: [SQLValue] = []) -> StatementOutcome {
        guard let conn, !isPipelined else {
            return .failure(SQLError(kind: .connection, message: "connection is closed"))
        }
        let result: OpaquePointer? =
            Self.withBinaryParameters(parameters) { types, values, lengths, formats in
                PQexecParams(conn, sql, Int32(values.count), types, values, lengths, formats, 1)
            } ?? nil
        guard let result else {
            return .failure(SQLError(kind: .connection, message: PGResult.errorMessage(conn)))
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return .success(PGResult.decode(result))
        default:
            return .failure(PGResult.error(from: result, conn: conn))
        }
    }

    /// Drains pending notifications: `(channel, payload)` pairs. Call after `consumeInput()`.
    func takeNotifications() -> [(channel: String, payload: String)] {
        guard let conn else { return [] }
        var out: [(String, String)] = []
        while let notify = PQnotifies(conn) {
            let channel = notify.pointee.relname.map { String(cString: $0) } ?? ""
            let payload = notify.pointee.extra.map { String(cString: $0) } ?? ""
            PQfreemem(notify)
            out.append((channel, payload))
        }
        return out
    }

    /// Reads available input without blocking; false if the connection broke.
    func consumeInput() -> Bool {
        guard let conn else { return false }
        return PQconsumeInput(conn) == 1 && PQstatus(conn) == CONNECTION_OK
    }

    var lastErrorMessage: String { conn.map { PGResult.errorMessage($0) } ?? "connection is closed" }
}

/// Receives server notices (WARNING, NOTICE) for a connection and logs them at debug level.
/// Owned by its `PGConnection`, which calls `PQfinish` before releasing it.
private final class NoticeSink {
    let logger: Logger
    init(logger: Logger) { self.logger = logger }
}

private func pgNoticeReceiver(_ argument: UnsafeMutableRawPointer?, _ result: OpaquePointer?) {
    guard let argument, let result else { return }
    let sink = Unmanaged<NoticeSink>.fromOpaque(argument).takeUnretainedValue()
    let message = PQresultErrorMessage(result).map { String(cString: $0) } ?? ""
    sink.logger.debug("server notice", metadata: .init([.error: "\(message.trimmingCharacters(in: .whitespacesAndNewlines))"]))
}
