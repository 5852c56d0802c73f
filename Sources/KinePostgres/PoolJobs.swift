import KineSQL
import KineSync

/// Statements submitted by one `pipeline` call, waiting for a connection.
final class PipelineJob: Sendable {
    let id: UInt64
    let statements: [SQLStatement]
    /// When a queued job gives up waiting for a connection.
    let deadline: ContinuousClock.Instant
    /// Whether the statements may leave a transaction open (BEGIN / START TRANSACTION); such a
    /// job ends its batch so it can never run inside another job's transaction.
    let mayOpenTransaction: Bool
    let completion: Completion<JobOutcome>

    init(id: UInt64, statements: [SQLStatement], deadline: ContinuousClock.Instant, completion: Completion<JobOutcome>) {
        self.id = id
        self.statements = statements
        self.deadline = deadline
        self.completion = completion
        self.mayOpenTransaction = statements.contains { statement in
            let head = statement.sql.drop { $0.isWhitespace || $0 == "(" }.prefix(5).uppercased()
            return head.hasPrefix("BEGIN") || head.hasPrefix("START")
        }
    }
}

/// A request to reserve a connection for `withSession`.
final class SessionOpenJob: Sendable {
    let id: UInt64
    let deadline: ContinuousClock.Instant
    let completion: Completion<Result<UInt64, SQLError>>

    init(id: UInt64, deadline: ContinuousClock.Instant, completion: Completion<Result<UInt64, SQLError>>) {
        self.id = id
        self.deadline = deadline
        self.completion = completion
    }
}

/// Work in the shared queue.
enum PoolRequest: Sendable {
    case pipeline(PipelineJob)
    case openSession(SessionOpenJob)

    var id: UInt64 {
        switch self {
        case .pipeline(let job): job.id
        case .openSession(let job): job.id
        }
    }

    var deadline: ContinuousClock.Instant {
        switch self {
        case .pipeline(let job): job.deadline
        case .openSession(let job): job.deadline
        }
    }

    func fail(_ error: SQLError) {
        switch self {
        case .pipeline(let job): job.completion.complete(.failure(error))
        case .openSession(let job): job.completion.complete(.failure(error))
        }
    }
}

/// Work queued on a reserved session.
enum SessionRequest: Sendable {
    case pipeline(PipelineJob)
    case close(Completion<Void>)

    /// Fails a pipeline with `error`; a close needs no answer but its caller's resumption.
    func fail(_ error: SQLError) {
        switch self {
        case .pipeline(let job): job.completion.complete(.failure(error))
        case .close(let completion): completion.complete(())
        }
    }
}
