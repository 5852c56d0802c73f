import NIOCore

/// The tiny HTTP/1.1 side of the port: recognising a request line instead of the HTTP/2 preface,
/// parsing one request head and rendering a `Connection: close` response.
enum HTTP1 {
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

    struct RequestHead: Equatable {
        var method: String
        var target: String
        var version: String
    }

    enum ParseResult: Equatable {
        case needMoreBytes
        case head(RequestHead)
        case invalid
        case tooLarge
    }

    /// Looks for a complete request head (`\r\n\r\n`) and parses its request line.
    static func parseHead(_ bytes: ByteBufferView) -> ParseResult {
        let terminator: [UInt8] = [13, 10, 13, 10]
        guard let end = bytes.firstRange(of: terminator) else {
            return bytes.count > maxHeadSize ? .tooLarge : .needMoreBytes
        }
        let head = bytes[bytes.startIndex..<end.lowerBound]
        let lineEnd = head.firstIndex(of: 13) ?? head.endIndex
        let line = String(decoding: head[head.startIndex..<lineEnd], as: UTF8.self)
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1."), !parts[0].isEmpty, !parts[1].isEmpty else { return .invalid }
        return .head(RequestHead(method: String(parts[0]), target: String(parts[1]), version: String(parts[2])))
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 503: return "Service Unavailable"
        default: return "Status"
        }
    }

    static func render(_ response: GRPCHTTP1Response, headOnly: Bool, into buffer: inout ByteBuffer) {
        buffer.writeString(
            "HTTP/1.1 \(response.status) \(reason(response.status))\r\n"
                + "Content-Type: \(response.contentType)\r\n"
                + "Content-Length: \(response.body.count)\r\n"
                + "Connection: close\r\n\r\n"
        )
        if !headOnly { buffer.writeBytes(response.body) }
    }
}
