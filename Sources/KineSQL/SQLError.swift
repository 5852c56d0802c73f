/// A database failure, classified enough for the store to react (retry, report, give up).
public struct SQLError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// Could not connect, or the connection broke; the statement may or may not have run.
        case connection
        /// The server rejected a statement; `sqlState` says why (e.g. 23505 unique violation).
        case server
        /// A statement after a failed one in the same pipeline; it did not run.
        case pipelineAborted
        /// The client gave up (shutdown, cancelled).
        case cancelled
    }

    public var kind: Kind
    /// Five-character SQLSTATE, when the server sent one.
    public var sqlState: String?
    /// Constraint name for integrity violations (`PG_DIAG_CONSTRAINT_NAME`).
    public var constraint: String?
    public var message: String

    public init(kind: Kind, sqlState: String? = nil, constraint: String? = nil, message: String) {
        self.kind = kind
        self.sqlState = sqlState
        self.constraint = constraint
        self.message = message
    }

    public var isUniqueViolation: Bool { sqlState == "23505" }
    public var description: String {
        var text = "SQL error (\(kind)"
        if let sqlState { text += " \(sqlState)" }
        if let constraint { text += " on \(constraint)" }
        return text + "): \(message)"
    }
}
