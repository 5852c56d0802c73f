internal import CNGHTTP2

/// The HTTP/2 rules for one request header block (RFC 9113 §8.2-8.3), as nghttp2 applies them when
/// its own HTTP messaging checks are on, with one difference: `:authority` (and `host`) may be any
/// valid header value. etcd's server (grpc-go) accepts any authority, and etcdctl 3.5 on a unix
/// socket sends the socket's path (`/run/kine.sock`), which nghttp2's host-name check refuses.
/// So the server session turns nghttp2's checks off and applies these instead, through nghttp2's
/// own character checks, so everything else is refused or ignored exactly as before. Not carried
/// over: `content-length` (gRPC does not use it; grpc-go ignores it too) and extended CONNECT.
///
/// One value per header block: HTTP/2 never interleaves another frame into a block.
struct HTTP2RequestHeaderRules {
    enum Verdict: Equatable {
        case accept
        /// nghttp2 drops a regular field with an invalid name or value and goes on.
        case ignore
        /// A malformed request: the stream is reset with PROTOCOL_ERROR.
        case reject
    }

    private enum Pseudo: UInt8 {
        case method = 1
        case path = 2
        case scheme = 4
        case authority = 8
    }

    /// A request's trailers (a second HEADERS): no pseudo-headers, and they must end the stream.
    let isTrailers: Bool
    private var pseudoSeen: UInt8 = 0
    private var regularSeen = false
    private var hostSeen = false

    init(isTrailers: Bool) {
        self.isTrailers = isTrailers
    }

    mutating func check(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) -> Verdict {
        guard let first = name.first else { return .reject }
        if first == UInt8(ascii: ":") { return checkPseudo(name: name, value: value) }
        guard Self.valid(nghttp2_check_header_name, name) else {
            // Upper case is never allowed; other invalid names are dropped.
            if name.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) { return .reject }
            regularSeen = true
            return .ignore
        }
        regularSeen = true
        switch Self.lowercased(name) {
        case "host":
            if hostSeen { return .reject }
            guard Self.valid(nghttp2_check_header_value, value) else { return .ignore }
            hostSeen = true
            return .accept
        case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
            return .reject
        case "te":
            return Self.lowercased(value) == "trailers" ? .accept : .reject
        default:
            return Self.valid(nghttp2_check_header_value_rfc9113, value) ? .accept : .ignore
        }
    }

    /// Whether the block, now complete, is a request (or trailers) nghttp2 would take.
    func complete(endStream: Bool) -> Bool {
        if isTrailers { return endStream }
        let required = Pseudo.method.rawValue | Pseudo.path.rawValue | Pseudo.scheme.rawValue
        return pseudoSeen & required == required && (pseudoSeen & Pseudo.authority.rawValue != 0 || hostSeen)
    }

    private mutating func checkPseudo(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) -> Verdict {
        if isTrailers || regularSeen { return .reject }
        let pseudo: Pseudo
        let valid: Bool
        switch String(decoding: name, as: UTF8.self) {
        case ":method": (pseudo, valid) = (.method, Self.valid(nghttp2_check_method, value))
        case ":path": (pseudo, valid) = (.path, Self.valid(nghttp2_check_path, value))
        case ":scheme": (pseudo, valid) = (.scheme, Self.validScheme(value))
        case ":authority": (pseudo, valid) = (.authority, Self.valid(nghttp2_check_header_value, value))
        default: return .reject
        }
        guard valid, pseudoSeen & pseudo.rawValue == 0 else { return .reject }
        pseudoSeen |= pseudo.rawValue
        return .accept
    }

    private static func valid(_ check: (UnsafePointer<UInt8>?, Int) -> Int32, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        check(bytes.baseAddress, bytes.count) != 0
    }

    /// RFC 3986's scheme: a letter, then letters, digits, `+`, `-` and `.` (nghttp2's rule).
    private static func validScheme(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let first = bytes.first, isLetter(first) else { return false }
        return bytes.dropFirst().allSatisfy { isLetter($0) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2B || $0 == 0x2D || $0 == 0x2E }
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z")
    }

    private static func lowercased(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self).lowercased()
    }
}
