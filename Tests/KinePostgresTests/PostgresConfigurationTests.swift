import Testing

@testable import KinePostgres

@Suite("PostgresConfiguration")
struct PostgresConfigurationTests {
    @Test("full URL with parameters")
    func fullURL() throws {
        let c = try PostgresConfiguration(endpoint: "postgres://alice:s%40cret@db.example:6432/MyDB?sslmode=disable&connect_timeout=3")
        #expect(c.host == "db.example")
        #expect(c.port == 6432)
        #expect(c.user == "alice")
        #expect(c.password == "s@cret")
        #expect(c.database == "mydb")
        #expect(c.parameters == ["sslmode": "disable", "connect_timeout": "3"])
        let params = Dictionary(c.connectionParameters, uniquingKeysWith: { first, _ in first })
        #expect(params["dbname"] == "mydb")
        #expect(params["password"] == "s@cret")
        #expect(params["connect_timeout"] == "3")
        #expect(params["application_name"] == "kine")
        #expect(!c.description.contains("s@cret"))
    }

    @Test("postgresql scheme, empty path and slash path give database kubernetes")
    func defaults() throws {
        #expect(try PostgresConfiguration(endpoint: "postgresql://u@h").database == "kubernetes")
        #expect(try PostgresConfiguration(endpoint: "postgres://u@h/").database == "kubernetes")
        #expect(try PostgresConfiguration(endpoint: "postgres://u@h:5433").port == 5433)
    }

    @Test("empty endpoint is Go kine's default DSN")
    func emptyEndpoint() throws {
        for endpoint in ["", "postgres://"] {
            let c = try PostgresConfiguration(endpoint: endpoint)
            #expect(c.host == "localhost")
            #expect(c.user == "postgres")
            #expect(c.password == "postgres")
            #expect(c.database == "kubernetes")
        }
    }

    @Test("unix socket directory through the host parameter")
    func unixSocket() throws {
        let c = try PostgresConfiguration(endpoint: "postgres://postgres@/kine?host=/tmp/kine-pg")
        #expect(c.host == nil)
        #expect(c.database == "kine")
        let params = Dictionary(c.connectionParameters, uniquingKeysWith: { first, _ in first })
        #expect(params["host"] == "/tmp/kine-pg")
    }

    @Test("IPv6 host")
    func ipv6() throws {
        let c = try PostgresConfiguration(endpoint: "postgres://u@[::1]:5432/db")
        #expect(c.host == "::1")
        #expect(c.description == "postgres://u@[::1]:5432/db")
    }

    @Test("other schemes are rejected")
    func badScheme() {
        #expect(throws: PostgresConfiguration.ParseError.self) { try PostgresConfiguration(endpoint: "mysql://u@h/db") }
    }

    @Test("identifier quoting")
    func quoting() {
        #expect(quoteIdentifier("kine") == "\"kine\"")
        #expect(quoteIdentifier("a\"b") == "\"a\"\"b\"")
    }
}
