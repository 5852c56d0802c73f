import ArgumentParser
import Foundation
import KineHTTP2
import KineServer

/// Go kine's TLS flags: the etcd port's certificate (with client-certificate auth when a trusted
/// CA is given), and TLS to PostgreSQL. Each also `KINE_*`.
struct TLSOptions: ParsableArguments {
    @Option(help: "Certificate to serve the etcd port with TLS, PEM (KINE_SERVER_CERT_FILE). Re-read when the file changes.")
    var serverCertFile: String?

    @Option(help: "Private key of --server-cert-file, PEM (KINE_SERVER_KEY_FILE).")
    var serverKeyFile: String?

    @Option(help: "CA for client certificates on the etcd port (KINE_TRUSTED_CA_FILE): clients without one from it are refused.")
    var trustedCaFile: String?

    @Option(help: "CA to verify PostgreSQL's certificate with (KINE_CA_FILE): libpq sslrootcert, sslmode verify-full.")
    var caFile: String?

    @Option(help: "Client certificate for PostgreSQL, PEM (KINE_CERT_FILE): libpq sslcert.")
    var certFile: String?

    @Option(help: "Its private key (KINE_KEY_FILE): libpq sslkey.")
    var keyFile: String?

    @Flag(help: "TLS to PostgreSQL without verifying its certificate (KINE_SKIP_VERIFY): sslmode require instead of verify-full.")
    var skipVerify = false

    func apply(to configuration: inout KineConfiguration, environment: [String: String]) throws {
        func setting(_ value: String?, _ name: String) -> String? { value ?? environment["KINE_\(name)"] }
        func readable(_ file: String?, _ flag: String) throws -> String? {
            try file.map { try readableFile($0, flag: flag) }
        }
        let cert = try readable(setting(serverCertFile, "SERVER_CERT_FILE"), "--server-cert-file")
        let key = try readable(setting(serverKeyFile, "SERVER_KEY_FILE"), "--server-key-file")
        let ca = try readable(setting(trustedCaFile, "TRUSTED_CA_FILE"), "--trusted-ca-file")
        switch (cert, key) {
        case (let cert?, let key?):
            configuration.serverTLS = GRPCTLSConfiguration(certificateChainFile: cert, privateKeyFile: key, trustedCAFile: ca)
        case (nil, nil):
            if ca != nil { throw ValidationError("--trusted-ca-file needs --server-cert-file and --server-key-file") }
        default:
            throw ValidationError("TLS on the etcd port needs both --server-cert-file and --server-key-file")
        }
        let skip = skipVerify || ["1", "true"].contains(environment["KINE_SKIP_VERIFY"]?.lowercased() ?? "")
        configuration.datastoreTLS = DatastoreTLS(
            caFile: try readable(setting(caFile, "CA_FILE"), "--ca-file"),
            certFile: try readable(setting(certFile, "CERT_FILE"), "--cert-file"),
            keyFile: try readable(setting(keyFile, "KEY_FILE"), "--key-file"), skipVerify: skip)
    }
}

/// `file` when it can be read; else the error naming the flag that gave it.
func readableFile(_ file: String, flag: String) throws -> String {
    guard FileManager.default.isReadableFile(atPath: file) else { throw ValidationError("\(flag) \(file): no such readable file") }
    return file
}
