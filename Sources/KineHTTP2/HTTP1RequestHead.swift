/// A parsed HTTP/1.x request line and header fields.
public struct HTTP1RequestHead: Sendable, Equatable {
    public var method: String
    /// The request target as sent (`/v3/kv/range`, `/health?exclude=NOSPACE`).
    public var target: String
    public var version: String
    /// Field names lowercased, in arrival order.
    public var headers: [HTTP1Header]

    /// The target without its query.
    public var path: String { String(target.prefix { $0 != "?" }) }

    /// The first value of a field (`name` lowercase).
    public func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }

    enum BodyFraming: Equatable {
        case none
        case length(Int)
        case chunked
    }

    let bodyFraming: BodyFraming

    /// HTTP/1.1 keeps the connection unless the client says `close`; HTTP/1.0 closes unless it
    /// says `keep-alive`.
    var keepAlive: Bool {
        let tokens = headers.filter { $0.name == "connection" }
            .flatMap { $0.value.lowercased().split(separator: ",").map { $0.trimmingWhitespace() } }
        if version == "HTTP/1.0" { return tokens.contains("keep-alive") }
        return !tokens.contains("close")
    }

    /// curl sends `Expect: 100-continue` before a body over 1 KiB and waits for the interim answer.
    var expectsContinue: Bool { header("expect")?.lowercased() == "100-continue" }

    public init(method: String, target: String, version: String = "HTTP/1.1", headers: [HTTP1Header] = []) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        bodyFraming = .none
    }

    private init(method: String, target: String, version: String, headers: [HTTP1Header], bodyFraming: BodyFraming) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.bodyFraming = bodyFraming
    }

    struct Failure: Error, Equatable {
        var status: Int
        var message: String
    }

    /// Parses the bytes before the blank line that ends a head.
    static func parse(_ bytes: [UInt8]) -> Result<HTTP1RequestHead, Failure> {
        var lines = bytes.split(separator: 10, omittingEmptySubsequences: false).map { line in
            line.last == 13 ? line.dropLast() : line
        }
        guard !lines.isEmpty else { return .failure(Failure(status: 400, message: "empty request")) }
        let requestLine = String(decoding: lines.removeFirst(), as: UTF8.self)
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty, parts[2].hasPrefix("HTTP/1.") else {
            return .failure(Failure(status: 400, message: "malformed request line"))
        }
        var headers: [HTTP1Header] = []
        for line in lines where !line.isEmpty {
            guard line.first != 0x20, line.first != 0x09, let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                return .failure(Failure(status: 400, message: "malformed header field"))
            }
            let name = String(decoding: line[line.startIndex..<colon], as: UTF8.self)
            guard !name.isEmpty, !name.contains(" ") else {
                return .failure(Failure(status: 400, message: "malformed header field"))
            }
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingWhitespace()
            headers.append(HTTP1Header(name: name.lowercased(), value: value))
        }
        let framing: BodyFraming
        let encodings = headers.filter { $0.name == "transfer-encoding" }
            .flatMap { $0.value.lowercased().split(separator: ",").map { $0.trimmingWhitespace() } }
        let lengths = Set(headers.filter { $0.name == "content-length" }.map(\.value))
        if !encodings.isEmpty {
            // Only plain chunked is understood; as Go answers other codings, 501.
            guard encodings == ["chunked"] else { return .failure(Failure(status: 501, message: "unsupported transfer encoding")) }
            guard lengths.isEmpty else { return .failure(Failure(status: 400, message: "both Content-Length and Transfer-Encoding")) }
            framing = .chunked
        } else if let length = lengths.first {
            guard lengths.count == 1, let count = Int(length), count >= 0, length.allSatisfy(\.isASCIIDigit) else {
                return .failure(Failure(status: 400, message: "bad Content-Length"))
            }
            framing = count == 0 ? .none : .length(count)
        } else {
            framing = .none
        }
        return .success(
            HTTP1RequestHead(
                method: String(parts[0]), target: String(parts[1]), version: String(parts[2]), headers: headers,
                bodyFraming: framing))
    }
}

public struct HTTP1Header: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        let text = String(self)
        guard let first = text.firstIndex(where: { $0 != " " && $0 != "\t" }),
            let last = text.lastIndex(where: { $0 != " " && $0 != "\t" })
        else { return "" }
        return String(text[first...last])
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
