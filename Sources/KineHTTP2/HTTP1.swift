import NIOCore

/// The HTTP/1.1 side of the port: recognising a request line instead of the HTTP/2 preface, and
/// rendering response heads.
public enum HTTP1 {
    static let http2Preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    static let maxHeadSize = 16 * 1024

    enum Detection: Equatable {
        case needMoreBytes
        case http2
        case http1
        case garbage
    }

    /// Decides from the first bytes of a connection whether it speaks HTTP/2 (prior knowledge) or
    /// HTTP/1.1.
    static func detect(_ bytes: ByteBufferView) -> Detection {
        let count = min(bytes.count, http2Preface.count)
        if bytes.prefix(count).elementsEqual(http2Preface.prefix(count)) {
            return count == http2Preface.count ? .http2 : .needMoreBytes
        }
        // An HTTP/1.x request line starts with a method token of uppercase letters then a space.
        var index = 0
        for byte in bytes {
            if byte == UInt8(ascii: " ") { return index > 0 ? .http1 : .garbage }
            guard byte >= UInt8(ascii: "A"), byte <= UInt8(ascii: "Z"), index < 16 else { return .garbage }
            index += 1
        }
        return .needMoreBytes
    }

    /// Go's `http.StatusText` for the codes this server sends (the gateway's stream errors quote it).
    public static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 413: return "Request Entity Too Large"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        default: return "Status"
        }
    }

    enum Framing {
        case length(Int)
        case chunked
    }

    /// The status line and header fields. etcd's client port sends its CORS headers on every
    /// HTTP answer (its access controller allows any origin by default).
    static func renderHead(_ response: HTTP1Response, framing: Framing, keepAlive: Bool, into buffer: inout ByteBuffer) {
        var head = "HTTP/1.1 \(response.status) \(reason(response.status))\r\n"
        head += "Access-Control-Allow-Headers: accept, content-type, authorization\r\n"
        head += "Access-Control-Allow-Methods: POST, GET, OPTIONS, PUT, DELETE\r\n"
        head += "Access-Control-Allow-Origin: *\r\n"
        if !response.contentType.isEmpty { head += "Content-Type: \(response.contentType)\r\n" }
        for header in response.headers { head += "\(header.name): \(header.value)\r\n" }
        switch framing {
        case .length(let count): head += "Content-Length: \(count)\r\n"
        case .chunked: head += "Transfer-Encoding: chunked\r\n"
        }
        if !keepAlive { head += "Connection: close\r\n" }
        buffer.writeString(head + "\r\n")
    }
}
