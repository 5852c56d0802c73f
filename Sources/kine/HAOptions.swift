import ArgumentParser
import Foundation
import KineHA
import KineHTTP2
import KineServer

/// The `--ha-*` flags of `kine serve`; each also `KINE_HA_*`. HA is off unless `--ha-peer` is given.
struct HAOptions: ParsableArguments {
    @Option(help: "This node's name in the pair (KINE_HA_NODE_NAME). Default: the host name.")
    var haNodeName: String?

    @Option(help: "The peer's HA port, HOST:PORT; turns two-node HA on (KINE_HA_PEER).")
    var haPeer: String?

    @Option(help: "Where this node serves its HA port (KINE_HA_LISTEN_ADDRESS). Default 0.0.0.0:2380.")
    var haListenAddress: String?

    @Option(help: "The peer's PostgreSQL, postgres://user:password@host:port/database (KINE_HA_PEER_ENDPOINT).")
    var haPeerEndpoint: String?

    @Option(help: "sync (an acknowledged write is on both nodes) or async (KINE_HA_REPLICATION). Default sync.")
    var haReplication: String?

    @Option(help: "How long both probe channels must fail before the peer is dead, e.g. 5s (KINE_HA_LIVENESS). Default 5s.")
    var haLiveness: String?

    @Option(help: "Time between probe rounds (KINE_HA_PROBE_INTERVAL). Default 1s.")
    var haProbeInterval: String?

    @Option(help: "Time one probe may take (KINE_HA_PROBE_TIMEOUT). Default: 80% of the interval.")
    var haProbeTimeout: String?

    @Option(help: "No automatic promotion this long after a leadership change (KINE_HA_HOLD_DOWN). Default 30s.")
    var haHoldDown: String?

    @Option(help: "How long a starting node waits for its peer before serving alone (KINE_HA_STARTUP_GRACE). Default 10s.")
    var haStartupGrace: String?

    @Option(help: "primary or secondary: who leads when both start empty (KINE_HA_PRIORITY). Default secondary.")
    var haPriority: String?

    @Option(
        help:
            "A third address both nodes reach, HOST:PORT (e.g. the site's router), tried with a TCP connect: a node that cannot reach it does not promote, a leader that loses peer and witness stops taking writes (KINE_HA_WITNESS)."
    )
    var haWitness: String?

    @Option(
        help: "newest, incumbent or promoted: which leader keeps leading when both led during a split (KINE_HA_REUNION). Default newest.")
    var haReunion: String?

    @Option(help: "Write times closer than this do not decide a newest reunion (KINE_HA_MAX_CLOCK_SKEW). Default 2s.")
    var haMaxClockSkew: String?

    @Option(help: "How long a handover waits for the follower before the leader serves again (KINE_HA_HANDOVER_TIMEOUT). Default 10s.")
    var haHandoverTimeout: String?

    @Option(
        help:
            "This node's certificate for the peer link, PEM (KINE_HA_CERT_FILE); with --ha-key-file and --ha-trusted-ca-file: mutual TLS on the HA port."
    )
    var haCertFile: String?

    @Option(help: "The private key of --ha-cert-file, PEM (KINE_HA_KEY_FILE).")
    var haKeyFile: String?

    @Option(
        help:
            "The CA both nodes' peer certificates come from, PEM (KINE_HA_TRUSTED_CA_FILE): a peer without a certificate from it is refused."
    )
    var haTrustedCaFile: String?

    /// nil when HA is off; a `ValidationError` naming the flag for anything malformed.
    func configuration(environment: [String: String]) throws -> HAConfiguration? {
        func setting(_ value: String?, _ name: String) -> String? { value ?? environment["KINE_HA_\(name)"] }
        guard let peer = setting(haPeer, "PEER") else {
            if setting(haPeerEndpoint, "PEER_ENDPOINT") != nil { throw ValidationError("--ha-peer-endpoint needs --ha-peer") }
            return nil
        }
        // try?: the parse error is replaced by the flag's own message below.
        guard case .tcp(let peerHost, let peerPort)? = try? KineConfiguration.parseListenAddress(peer), peerPort > 0 else {
            throw ValidationError("--ha-peer \(peer): expected HOST:PORT (the peer's --ha-listen-address)")
        }
        guard let peerEndpoint = setting(haPeerEndpoint, "PEER_ENDPOINT") else {
            throw ValidationError("--ha-peer needs --ha-peer-endpoint (the peer's PostgreSQL: postgres://user:password@host:port/database)")
        }
        let listen = try KineConfiguration.parseListenAddress(setting(haListenAddress, "LISTEN_ADDRESS") ?? "0.0.0.0:2380")
        guard case .tcp = listen else { throw ValidationError("--ha-listen-address must be host:port") }
        let name = setting(haNodeName, "NODE_NAME") ?? ProcessInfo.processInfo.hostName
        guard !name.isEmpty else { throw ValidationError("--ha-node-name must not be empty") }
        var ha = HAConfiguration(nodeName: name, peerHost: peerHost, peerPort: peerPort, listen: listen, peerEndpoint: peerEndpoint)
        if let text = setting(haReplication, "REPLICATION") {
            guard let mode = ReplicationMode(rawValue: text.lowercased()) else {
                throw ValidationError("--ha-replication \(text): sync or async")
            }
            ha.replication = mode
        }
        if let text = setting(haPriority, "PRIORITY") {
            guard let priority = HAPriority(rawValue: text.lowercased()) else {
                throw ValidationError("--ha-priority \(text): primary or secondary")
            }
            ha.priority = priority
        }
        func duration(_ value: String?, _ name: String, _ flag: String) throws -> Duration? {
            guard let text = setting(value, name) else { return nil }
            guard let parsed = ServeCommand.parseDuration(text), parsed > .zero else { throw ValidationError("invalid \(flag) \(text)") }
            return parsed
        }
        if let value = try duration(haLiveness, "LIVENESS", "--ha-liveness") { ha.timing.liveness = value }
        if let value = try duration(haProbeInterval, "PROBE_INTERVAL", "--ha-probe-interval") {
            ha.timing.probeInterval = value
            ha.timing.probeTimeout = value * 0.8
        }
        if let value = try duration(haProbeTimeout, "PROBE_TIMEOUT", "--ha-probe-timeout") { ha.timing.probeTimeout = value }
        if let value = try duration(haHoldDown, "HOLD_DOWN", "--ha-hold-down") { ha.timing.holdDown = value }
        if let value = try duration(haStartupGrace, "STARTUP_GRACE", "--ha-startup-grace") { ha.timing.startupGrace = value }
        if let value = try duration(haMaxClockSkew, "MAX_CLOCK_SKEW", "--ha-max-clock-skew") { ha.maxClockSkew = value }
        if let value = try duration(haHandoverTimeout, "HANDOVER_TIMEOUT", "--ha-handover-timeout") { ha.handoverTimeout = value }
        if let text = setting(haReunion, "REUNION") {
            guard let policy = ReunionPolicy(rawValue: text.lowercased()) else {
                throw ValidationError("--ha-reunion \(text): newest, incumbent or promoted")
            }
            ha.reunionPolicy = policy
        }
        if let text = setting(haWitness, "WITNESS") {
            // try?: the parse error is replaced by the flag's own message below.
            guard case .tcp(let host, let port)? = try? KineConfiguration.parseListenAddress(text), port > 0, host != "0.0.0.0" else {
                throw ValidationError("--ha-witness \(text): expected HOST:PORT")
            }
            ha.witness = (host, port)
        }
        ha.peerTLS = try HAOptions.peerTLS(
            cert: setting(haCertFile, "CERT_FILE"), key: setting(haKeyFile, "KEY_FILE"), ca: setting(haTrustedCaFile, "TRUSTED_CA_FILE"))
        // Clock skew injection for the reunion tests (Tests/e2e/test_ha_split.py); not a user setting.
        if let text = environment["KINE_HA_TEST_CLOCK_OFFSET_MS"], let offset = Int64(text) { ha.clockOffset = .milliseconds(offset) }
        // Fault injection for the mixed-version test (Tests/e2e/test_ha.py); not a user setting.
        if let text = environment["KINE_HA_TEST_SCHEMA_VERSION"], let version = UInt32(text) { ha.schemaVersion = version }
        if ha.timing.liveness < ha.timing.probeInterval * 2 {
            throw ValidationError("--ha-liveness must be at least two probe intervals")
        }
        return ha
    }

    /// Mutual TLS needs all three files, or none.
    static func peerTLS(cert: String?, key: String?, ca: String?) throws -> GRPCTLSConfiguration? {
        switch (cert, key, ca) {
        case (nil, nil, nil):
            return nil
        case (let cert?, let key?, let ca?):
            return GRPCTLSConfiguration(
                certificateChainFile: try readableFile(cert, flag: "--ha-cert-file"),
                privateKeyFile: try readableFile(key, flag: "--ha-key-file"),
                trustedCAFile: try readableFile(ca, flag: "--ha-trusted-ca-file"))
        default:
            throw ValidationError("mutual TLS on the peer link needs --ha-cert-file, --ha-key-file and --ha-trusted-ca-file together")
        }
    }
}
