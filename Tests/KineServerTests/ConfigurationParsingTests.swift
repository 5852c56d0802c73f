import KineHTTP2
import Testing

@testable import KineServer

/// The flag parsers shared by `kine serve` and `kine ha`: Go kine's listen addresses and Go-style
/// durations. Bad input is nil or a ConfigurationError, never a trap.
@Suite("Configuration parsing")
struct ConfigurationParsingTests {
    @Test("Listen addresses as Go kine takes them")
    func listenAddresses() throws {
        #expect(try KineConfiguration.parseListenAddress("0.0.0.0:2379") == .tcp(host: "0.0.0.0", port: 2379))
        #expect(try KineConfiguration.parseListenAddress(":2379") == .tcp(host: "0.0.0.0", port: 2379))
        #expect(try KineConfiguration.parseListenAddress("tcp://127.0.0.1:1") == .tcp(host: "127.0.0.1", port: 1))
        #expect(try KineConfiguration.parseListenAddress("http://localhost:65535") == .tcp(host: "localhost", port: 65535))
        #expect(try KineConfiguration.parseListenAddress("[::1]:2379") == .tcp(host: "::1", port: 2379))
        #expect(try KineConfiguration.parseListenAddress("unix:///run/kine.sock") == .unixSocket(path: "/run/kine.sock"))
        #expect(try KineConfiguration.parseListenAddress("unix://kine.sock") == .unixSocket(path: "kine.sock"))
        for bad in ["", "localhost", "host:", "host:65536", "host:-1", "host:x", "unix://", "tcp://"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try KineConfiguration.parseListenAddress(bad) }
        }
    }

    @Test("Go-style durations; anything else is nil")
    func durations() {
        #expect(KineConfiguration.parseDuration("500ms") == .milliseconds(500))
        #expect(KineConfiguration.parseDuration("5s") == .seconds(5))
        #expect(KineConfiguration.parseDuration("1.5m") == .seconds(90))
        #expect(KineConfiguration.parseDuration("2h") == .seconds(7200))
        #expect(KineConfiguration.parseDuration("0s") == .zero)
        #expect(KineConfiguration.parseDuration(".5s") == .milliseconds(500))
        for bad in ["", "5", "s", "ms", "-5s", "nans", "infs", "1e30s", "5 s", "+5s", "5d", "1h30m"] {
            #expect(KineConfiguration.parseDuration(bad) == nil, "\(bad)")
        }
    }
}
