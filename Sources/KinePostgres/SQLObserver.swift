import KineSQL

/// Hears every SQL statement the pool ran (Go kine's `kine_sql_total` and `kine_sql_time_seconds`).
public protocol SQLObserver: Sendable {
    /// One statement's outcome: `name` is the statement's (`SQLStatement.name`, "" for an unnamed
    /// one); `errorCode` is "" on success, else the SQLSTATE, or the failure's kind (`connection`,
    /// `cancelled`, `pipelineAborted`) when the server gave none. `duration` is its round trip's
    /// (statements sent together share it).
    func statementCompleted(name: String, errorCode: String, duration: Duration)
}

extension PoolCore {
    /// `submit`, timed and reported to the options' observer.
    func observedSubmit(_ statements: [SQLStatement], session: UInt64?) async -> JobOutcome {
        guard let observer = options.observer else { return await submit(statements, session: session) }
        let start = ContinuousClock.now
        let outcome = await submit(statements, session: session)
        let duration = ContinuousClock.now - start
        switch outcome {
        case .success(let results):
            for (statement, result) in zip(statements, results) {
                switch result {
                case .success: observer.statementCompleted(name: statement.name ?? "", errorCode: "", duration: duration)
                case .failure(let error):
                    observer.statementCompleted(name: statement.name ?? "", errorCode: Self.code(error), duration: duration)
                }
            }
        case .failure(let error):
            let code = Self.code(error)
            for statement in statements { observer.statementCompleted(name: statement.name ?? "", errorCode: code, duration: duration) }
        }
        return outcome
    }

    static func code(_ error: SQLError) -> String {
        if let state = error.sqlState, !state.isEmpty { return state }
        return "\(error.kind)"
    }
}
