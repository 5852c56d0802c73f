/// A JSON parser whose failures read as Go's `encoding/json` words them, because etcd's gateway
/// returns those messages to the client (`invalid character 'o' in literal null (expecting 'u')`).
struct JSONParser {
    enum Failure: Error, Equatable {
        /// The input ended inside a value ("unexpected EOF" from a decoder, "unexpected end of
        /// JSON input" from `json.Unmarshal`).
        case unexpectedEnd
        /// A scanner error, worded as Go's `SyntaxError`.
        case syntax(String)
    }

    /// Go's decoder refuses deeper nesting too (at 10 000); ours stops earlier to keep the
    /// recursion well inside a task's stack. No etcd request nests anywhere near this.
    static let maxDepth = 200

    private let bytes: [UInt8]
    private(set) var index: Int
    private var depth = 0

    init(_ bytes: [UInt8], from index: Int = 0) {
        self.bytes = bytes
        self.index = index
    }

    /// Parses a whole document as `json.Unmarshal` does: one value, then only whitespace.
    static func parseDocument(_ bytes: [UInt8]) throws(Failure) -> JSONNode {
        var parser = JSONParser(bytes)
        parser.skipSpace()
        let value = try parser.parseValue()
        parser.skipSpace()
        if parser.index < bytes.count {
            throw .syntax("invalid character \(quoteChar(bytes[parser.index])) after top-level value")
        }
        return value
    }

    /// Skips whitespace; `true` if a value starts before the end.
    mutating func skipSpace() {
        while index < bytes.count, Self.isSpace(bytes[index]) { index += 1 }
    }

    var atEnd: Bool { index >= bytes.count }

    mutating func parseValue() throws(Failure) -> JSONNode {
        guard let byte = peek() else { throw .unexpectedEnd }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""):
            let (text, raw) = try parseString()
            return .string(text, raw: raw)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        case UInt8(ascii: "t"):
            try parseLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try parseLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try parseLiteral("null")
            return .null
        default:
            throw .syntax("invalid character \(Self.quoteChar(byte)) looking for beginning of value")
        }
    }

    private mutating func enter() throws(Failure) {
        depth += 1
        if depth > Self.maxDepth { throw .syntax("exceeded max depth") }
    }

    private mutating func parseObject() throws(Failure) -> JSONNode {
        try enter()
        defer { depth -= 1 }
        index += 1
        var members: [JSONNode.Member] = []
        skipSpace()
        guard let first = peek() else { throw .unexpectedEnd }
        if first == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipSpace()
            guard let quote = peek() else { throw .unexpectedEnd }
            guard quote == UInt8(ascii: "\"") else {
                throw .syntax("invalid character \(Self.quoteChar(quote)) looking for beginning of object key string")
            }
            let (key, _) = try parseString()
            skipSpace()
            guard let colon = peek() else { throw .unexpectedEnd }
            guard colon == UInt8(ascii: ":") else {
                throw .syntax("invalid character \(Self.quoteChar(colon)) after object key")
            }
            index += 1
            skipSpace()
            members.append(JSONNode.Member(key: key, value: try parseValue()))
            skipSpace()
            guard let next = peek() else { throw .unexpectedEnd }
            index += 1
            if next == UInt8(ascii: "}") { return .object(members) }
            guard next == UInt8(ascii: ",") else {
                throw .syntax("invalid character \(Self.quoteChar(next)) after object key:value pair")
            }
        }
    }

    private mutating func parseArray() throws(Failure) -> JSONNode {
        try enter()
        defer { depth -= 1 }
        index += 1
        var elements: [JSONNode] = []
        skipSpace()
        guard let first = peek() else { throw .unexpectedEnd }
        if first == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipSpace()
            elements.append(try parseValue())
            skipSpace()
            guard let next = peek() else { throw .unexpectedEnd }
            index += 1
            if next == UInt8(ascii: "]") { return .array(elements) }
            guard next == UInt8(ascii: ",") else {
                throw .syntax("invalid character \(Self.quoteChar(next)) after array element")
            }
        }
    }

    private mutating func parseLiteral(_ word: StaticString) throws(Failure) {
        let expected = word.withUTF8Buffer { Array($0) }
        let name = String(decoding: expected, as: UTF8.self)
        index += 1
        for wanted in expected.dropFirst() {
            guard let byte = peek() else { throw .unexpectedEnd }
            guard byte == wanted else {
                throw .syntax(
                    "invalid character \(Self.quoteChar(byte)) in literal \(name) (expecting \(Self.quoteChar(wanted)))")
            }
            index += 1
        }
    }

    /// A number's literal text, checked against JSON's grammar as Go's scanner checks it.
    private mutating func parseNumber() throws(Failure) -> String {
        let start = index
        if peek() == UInt8(ascii: "-") {
            index += 1
            guard let byte = peek() else { throw .unexpectedEnd }
            guard Self.isDigit(byte) else { throw .syntax("invalid character \(Self.quoteChar(byte)) in numeric literal") }
        }
        if peek() == UInt8(ascii: "0") {
            index += 1
        } else {
            while let byte = peek(), Self.isDigit(byte) { index += 1 }
        }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard let byte = peek() else { throw .unexpectedEnd }
            guard Self.isDigit(byte) else {
                throw .syntax("invalid character \(Self.quoteChar(byte)) after decimal point in numeric literal")
            }
            while let digit = peek(), Self.isDigit(digit) { index += 1 }
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            index += 1
            if let sign = peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { index += 1 }
            guard let byte = peek() else { throw .unexpectedEnd }
            guard Self.isDigit(byte) else {
                throw .syntax("invalid character \(Self.quoteChar(byte)) in exponent of numeric literal")
            }
            while let digit = peek(), Self.isDigit(digit) { index += 1 }
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    /// The decoded text (invalid UTF-8 and lone surrogates become U+FFFD, as in Go) and the raw
    /// bytes between the quotes.
    private mutating func parseString() throws(Failure) -> (String, [UInt8]) {
        index += 1
        let start = index
        var scalars = String.UnicodeScalarView()
        var plainStart = index
        func flushPlain(_ end: Int) {
            scalars.append(contentsOf: String(decoding: bytes[plainStart..<end], as: UTF8.self).unicodeScalars)
        }
        while true {
            guard let byte = peek() else { throw .unexpectedEnd }
            if byte == UInt8(ascii: "\"") {
                flushPlain(index)
                let raw = Array(bytes[start..<index])
                index += 1
                return (String(scalars), raw)
            }
            if byte < 0x20 { throw .syntax("invalid character \(Self.quoteChar(byte)) in string literal") }
            guard byte == UInt8(ascii: "\\") else {
                index += 1
                continue
            }
            flushPlain(index)
            index += 1
            guard let escape = peek() else { throw .unexpectedEnd }
            index += 1
            switch escape {
            case UInt8(ascii: "\""): scalars.append("\"")
            case UInt8(ascii: "\\"): scalars.append("\\")
            case UInt8(ascii: "/"): scalars.append("/")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                let unit = try parseHex4()
                if (0xD800..<0xDC00).contains(unit), peek() == UInt8(ascii: "\\"), index + 1 < bytes.count,
                    bytes[index + 1] == UInt8(ascii: "u")
                {
                    let saved = index
                    index += 2
                    let low = try parseHex4()
                    if (0xDC00..<0xE000).contains(low) {
                        let combined = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                        scalars.append(Unicode.Scalar(combined) ?? "\u{FFFD}")
                    } else {
                        // Not a pair: the first is replaced and the second read on its own.
                        scalars.append("\u{FFFD}")
                        index = saved
                    }
                } else {
                    scalars.append(Unicode.Scalar(unit) ?? "\u{FFFD}")
                }
            default:
                throw .syntax("invalid character \(Self.quoteChar(escape)) in string escape code")
            }
            plainStart = index
        }
    }

    private mutating func parseHex4() throws(Failure) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = peek() else { throw .unexpectedEnd }
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw .syntax("invalid character \(Self.quoteChar(byte)) in \\u hexadecimal character escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// Go's `quoteChar`: the byte as a rune in single quotes, escaped as `strconv.Quote` escapes it.
    static func quoteChar(_ byte: UInt8) -> String {
        switch byte {
        case UInt8(ascii: "'"): return #"'\''"#
        case UInt8(ascii: "\""): return #"'"'"#
        case 0x07: return #"'\a'"#
        case 0x08: return #"'\b'"#
        case 0x0C: return #"'\f'"#
        case 0x0A: return #"'\n'"#
        case 0x0D: return #"'\r'"#
        case 0x09: return #"'\t'"#
        case 0x0B: return #"'\v'"#
        case UInt8(ascii: "\\"): return #"'\\'"#
        case 0x00..<0x20, 0x7F: return "'\\x" + hex(byte) + "'"
        case 0x80..<0xA0: return "'\\u00" + hex(byte) + "'"
        case 0xAD: return "'\\u00ad'"
        default: return "'" + String(Character(Unicode.Scalar(byte))) + "'"
        }
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }
}
