import NIOCore
import NIOSSL

/// TLS for a server port or a client connection, from PEM files. With `trustedCAFile` the server
/// asks for a client certificate and refuses a connection without one signed by that CA; a
/// client verifies the server's certificate against it.
public struct GRPCTLSConfiguration: Sendable, Hashable {
    public var certificateChainFile: String
    public var privateKeyFile: String
    public var trustedCAFile: String?
    /// Check the peer's certificate names against the address it is reached at. The pair's peer
    /// link checks only that the certificate comes from the trusted CA (nodes are reached by IP).
    public var verifyHostname: Bool

    public init(certificateChainFile: String, privateKeyFile: String, trustedCAFile: String? = nil, verifyHostname: Bool = false) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
        self.trustedCAFile = trustedCAFile
        self.verifyHostname = verifyHostname
    }

    /// ALPN: gRPC speaks h2; the HTTP/1.1 endpoints (`/health`, `/metrics`) share the port.
    static let serverProtocols = ["h2", "http/1.1"]

    func serverContext() throws(GRPCTLSError) -> NIOSSLContext {
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: try chain(), privateKey: try key())
        tls.applicationProtocols = Self.serverProtocols
        if let trustedCAFile {
            tls.trustRoots = .certificates(try certificates(trustedCAFile, "trusted CA"))
            tls.certificateVerification = .noHostnameVerification
        }
        return try context(tls)
    }

    func clientContext() throws(GRPCTLSError) -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateChain = try chain()
        tls.privateKey = try key()
        tls.applicationProtocols = ["h2"]
        if let trustedCAFile { tls.trustRoots = .certificates(try certificates(trustedCAFile, "trusted CA")) }
        tls.certificateVerification = verifyHostname ? .fullVerification : .noHostnameVerification
        return try context(tls)
    }

    private func chain() throws(GRPCTLSError) -> [NIOSSLCertificateSource] {
        try certificates(certificateChainFile, "certificate").map { .certificate($0) }
    }

    private func key() throws(GRPCTLSError) -> NIOSSLPrivateKeySource {
        do {
            return .privateKey(try NIOSSLPrivateKey(file: privateKeyFile, format: .pem))
        } catch {
            throw GRPCTLSError("cannot read the private key \(privateKeyFile): \(error)")
        }
    }

    private func certificates(_ file: String, _ what: String) throws(GRPCTLSError) -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(file)
        } catch {
            throw GRPCTLSError("cannot read the \(what) file \(file): \(error)")
        }
        guard !certificates.isEmpty else { throw GRPCTLSError("the \(what) file \(file) holds no PEM certificate") }
        return certificates
    }

    private func context(_ tls: TLSConfiguration) throws(GRPCTLSError) -> NIOSSLContext {
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw GRPCTLSError("cannot use \(certificateChainFile) with \(privateKeyFile): \(error)")
        }
    }
}

/// A TLS setup that cannot work (unreadable file, key not matching its certificate).
public struct GRPCTLSError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
