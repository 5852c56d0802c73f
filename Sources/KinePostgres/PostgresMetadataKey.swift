import Logging

/// Metadata keys this module logs with, in one place.
public enum PostgresMetadataKey: String, Sendable {
    case connection = "kine.pg.connection"
    case target = "kine.pg.target"
    case generation = "kine.pg.generation"
    case error = "error"
    case sqlState = "kine.pg.sqlState"
    case jobs = "kine.pg.jobs"
    case statements = "kine.pg.statements"
    case backoff = "kine.pg.backoffMs"
    case session = "kine.pg.session"
    case channel = "kine.pg.channel"
    case database = "kine.pg.database"
    case backendPID = "kine.pg.backendPID"
}

extension Logger.Metadata {
    init(_ pairs: KeyValuePairs<PostgresMetadataKey, Logger.MetadataValue>) {
        self.init()
        for (key, value) in pairs { self[key.rawValue] = value }
    }
}
