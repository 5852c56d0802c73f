import Foundation

/// Where and how to connect to PostgreSQL, parsed from a kine endpoint such as
/// `postgres://user:pass@host:port/db?sslmode=disable` (or `postgresql://…`).
///
/// Follows Go kine's DSN handling: an empty endpoint means
/// `postgres://postgres:postgres@localhost/`, an empty path or `/` selects database
/// `kubernetes`, and the database name is lower-cased. Query parameters are passed to libpq as
/// connection keywords. The connection is opened with `PQconnectdbParams` keyword/value arrays,
/// never with a concatenated conninfo string.
public struct PostgresConfiguration: Sendable, Hashable, CustomStringConvertible {
    /// The endpoint used when none is given (Go kine's `defaultDSN`).
    public static let defaultEndpoint = "postgres://postgres:postgres@localhost/"
    /// The database used when the endpoint's path is empty or `/`.
    public static let defaultDatabase = "kubernetes"

    public var host: String?
    public var port: Int?
    public var user: String?
    public var password: String?
    public var database: String
    /// Extra libpq connection keywords (`sslmode`, `connect_timeout`, `host` for a unix socket
    /// directory, …). Keys are libpq keyword names.
    public var parameters: [String: String]

    public init(
        host: String? = "localhost",
        port: Int? = nil,
        user: String? = "postgres",
        password: String? = nil,
        database: String = PostgresConfiguration.defaultDatabase,
        parameters: [String: String] = [:]
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.parameters = parameters
    }

    /// A malformed endpoint.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var endpoint: String
        public var reason: String
        public var description: String { "invalid PostgreSQL endpoint (\(reason))" }
    }

    /// Parses a kine endpoint. Accepts `postgres://` and `postgresql://`; an empty string means
    /// ``defaultEndpoint``.
    public init(endpoint: String) throws(ParseError) {
        var rest = endpoint.trimmingCharacters(in: .whitespaces)
        if rest.isEmpty { rest = Self.defaultEndpoint }
        if let range = rest.range(of: "://") {
            let scheme = rest[..<range.lowerBound].lowercased()
            guard scheme == "postgres" || scheme == "postgresql" else {
                throw ParseError(endpoint: endpoint, reason: "scheme must be postgres:// or postgresql://")
            }
            rest = String(rest[range.upperBound...])
        }
        if rest.isEmpty { rest = String(Self.defaultEndpoint.dropFirst("postgres://".count)) }
        guard let components = URLComponents(string: "postgres://" + rest) else {
            throw ParseError(endpoint: endpoint, reason: "not a URL")
        }
        var host = components.host
        if let h = host, h.hasPrefix("["), h.hasSuffix("]") { host = String(h.dropFirst().dropLast()) }
        if let h = host, h.isEmpty { host = nil }
        self.host = host
        self.port = components.port
        self.user = components.user.flatMap { $0.isEmpty ? nil : $0 }
        self.password = components.password
        var path = components.path
        if path.hasPrefix("/") { path.removeFirst() }
        self.database = path.isEmpty ? Self.defaultDatabase : path.lowercased()
        var parameters: [String: String] = [:]
        for item in components.queryItems ?? [] where !item.name.isEmpty {
            parameters[item.name] = item.value ?? ""
        }
        self.parameters = parameters
    }

    /// The same server, another database (used to reach `postgres` for `CREATE DATABASE`).
    public func with(database: String) -> PostgresConfiguration {
        var copy = self
        copy.database = database
        return copy
    }

    /// libpq keyword/value pairs, in a stable order. The URL's host/port/user/password/database
    /// win over query parameters of the same name only when present.
    var connectionParameters: [(String, String)] {
        var result: [(String, String)] = []
        var seen = Set<String>()
        func add(_ key: String, _ value: String?) {
            guard let value, !seen.contains(key) else { return }
            seen.insert(key)
            result.append((key, value))
        }
        add("host", host)
        add("port", port.map(String.init))
        add("user", user)
        add("password", password)
        add("dbname", database)
        for key in parameters.keys.sorted() { add(key, parameters[key]) }
        // Defaults that suit a server which must notice a dead database quickly (HA re-pointing).
        add("application_name", "kine")
        add("connect_timeout", "5")
        add("keepalives", "1")
        add("keepalives_idle", "10")
        add("keepalives_interval", "5")
        add("keepalives_count", "3")
        return result
    }

    /// A libpq conninfo string (`key='value' …`) for this target with `overrides` applied, for
    /// a server-side connection such as a logical-replication subscription.
    public func conninfo(overrides: [String: String] = [:]) -> String {
        var pairs: [(String, String)] = []
        var seen = Set<String>()
        for key in overrides.keys.sorted() {
            if let value = overrides[key] { pairs.append((key, value)) }
            seen.insert(key)
        }
        for (key, value) in connectionParameters where !seen.contains(key) { pairs.append((key, value)) }
        return pairs.map { key, value in
            let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
            return "\(key)='\(escaped)'"
        }.joined(separator: " ")
    }

    /// The target without the password, for logs.
    public var description: String {
        var text = "postgres://"
        if let user { text += user + "@" }
        if let host { text += host.contains(":") ? "[\(host)]" : host }
        if let port { text += ":\(port)" }
        return text + "/" + database
    }
}
