public import KineCore

/// A gRPC status: the `grpc-status` code and its `grpc-message`.
///
/// Handlers throw it to end a call with a non-OK status; the client throws it when a call fails.
public struct GRPCStatus: Error, Sendable, Hashable, CustomStringConvertible {
    /// The `grpc-status` number (0 = OK, 1 = Cancelled, … 16 = Unauthenticated).
    public var code: Int
    /// The human-readable message (sent percent-encoded as `grpc-message`).
    public var message: String

    public init(code: Int, message: String = "") {
        self.code = code
        self.message = message
    }

    public init(_ code: Code, _ message: String = "") {
        self.init(code: code.rawValue, message: message)
    }

    public var isOK: Bool { code == 0 }

    public var description: String {
        let name = Code(rawValue: code).map { "\($0)" } ?? "code \(code)"
        return message.isEmpty ? "GRPCStatus(\(name))" : "GRPCStatus(\(name): \(message))"
    }

    /// The standard gRPC status codes (KineCore's, shared with `EtcdError`).
    public typealias Code = GRPCStatusCode

    public static let ok = GRPCStatus(code: 0)
}

/// `grpc-message` percent-encoding (gRPC over HTTP/2 spec): bytes 0x20–0x7E except `%` go literally,
/// every other byte of the UTF-8 encoding becomes `%XX` with uppercase hex digits.
enum GRPCMessageEncoding {
    private static let hex: [UInt8] = Array("0123456789ABCDEF".utf8)

    static func needsEncoding(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte > 0x7E || byte == UInt8(ascii: "%")
    }

    static func encode(_ message: String) -> String {
        let utf8 = message.utf8
        if !utf8.contains(where: needsEncoding) { return message }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count + 16)
        for byte in utf8 {
            if needsEncoding(byte) {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            } else {
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes `%XX` sequences; malformed sequences are kept literally (decoders must be tolerant).
    static func decode(_ encoded: String) -> String {
        let bytes = Array(encoded.utf8)
        guard bytes.contains(UInt8(ascii: "%")) else { return encoded }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%"), index + 2 < bytes.count,
                let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2])
            {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(byte)
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}
