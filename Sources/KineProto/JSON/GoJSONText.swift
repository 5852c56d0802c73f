/// Text encodings as Go's `encoding/json` and `encoding/base64` produce and accept them, so the
/// gateway's bodies and error messages match etcd's byte for byte.
enum GoJSONText {
    /// A JSON string literal as `json.Marshal` writes it: `<`, `>`, `&`, U+2028 and U+2029 escaped
    /// as `\u00XX`/`\u20XX`, control characters as `\n`, `\r`, `\t` or `\u00XX`.
    static func appendQuoted(_ text: String, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output.append(contentsOf: [0x5C, 0x22])
            case "\\": output.append(contentsOf: [0x5C, 0x5C])
            case "\n": output.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case "\r": output.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case "\t": output.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case "<", ">", "&", "\u{2028}", "\u{2029}":
                appendUnicodeEscape(scalar.value, to: &output)
            default:
                if scalar.value < 0x20 {
                    appendUnicodeEscape(scalar.value, to: &output)
                } else {
                    output.append(contentsOf: Array(String(Character(scalar)).utf8))
                }
            }
        }
        output.append(UInt8(ascii: "\""))
    }

    private static func appendUnicodeEscape(_ value: UInt32, to output: inout [UInt8]) {
        let digits = Array("0123456789abcdef".utf8)
        output.append(contentsOf: [0x5C, UInt8(ascii: "u")])
        for shift in stride(from: 12, through: 0, by: -4) {
            output.append(digits[Int((value >> UInt32(shift)) & 0xF)])
        }
    }

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Standard base64 with padding (`base64.StdEncoding`).
    static func appendBase64(_ bytes: [UInt8], to output: inout [UInt8]) {
        var index = 0
        while index + 3 <= bytes.count {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            output.append(alphabet[Int(chunk >> 18 & 63)])
            output.append(alphabet[Int(chunk >> 12 & 63)])
            output.append(alphabet[Int(chunk >> 6 & 63)])
            output.append(alphabet[Int(chunk & 63)])
            index += 3
        }
        let rest = bytes.count - index
        if rest == 1 {
            let chunk = UInt32(bytes[index]) << 16
            output.append(alphabet[Int(chunk >> 18 & 63)])
            output.append(alphabet[Int(chunk >> 12 & 63)])
            output.append(contentsOf: Array("==".utf8))
        } else if rest == 2 {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            output.append(alphabet[Int(chunk >> 18 & 63)])
            output.append(alphabet[Int(chunk >> 12 & 63)])
            output.append(alphabet[Int(chunk >> 6 & 63)])
            output.append(UInt8(ascii: "="))
        }
    }

    private static let decodeMap: [UInt8] = {
        var map = [UInt8](repeating: 0xFF, count: 256)
        for (value, byte) in alphabet.enumerated() { map[Int(byte)] = UInt8(value) }
        return map
    }()

    /// Decodes as `base64.StdEncoding.Decode` does, newlines skipped; a failure carries the offset
    /// Go's `CorruptInputError` reports ("illegal base64 data at input byte N").
    static func decodeBase64(_ text: [UInt8]) -> Result<[UInt8], Base64Failure> {
        var output: [UInt8] = []
        output.reserveCapacity(text.count / 4 * 3)
        var index = 0
        while true {
            var quantum = [UInt8](repeating: 0, count: 4)
            var length = 4
            var position = 0
            var finished = false
            while position < 4 {
                if index == text.count {
                    if position == 0 { return .success(output) }
                    // A quantum cut short: with padding required, that is an error at its start.
                    return .failure(Base64Failure(offset: index - position))
                }
                let byte = text[index]
                index += 1
                let value = decodeMap[Int(byte)]
                if value != 0xFF {
                    quantum[position] = value
                    position += 1
                    continue
                }
                if byte == 0x0A || byte == 0x0D { continue }
                guard byte == UInt8(ascii: "=") else { return .failure(Base64Failure(offset: index - 1)) }
                switch position {
                case 0, 1:
                    return .failure(Base64Failure(offset: index - 1))
                case 2:
                    while index < text.count, text[index] == 0x0A || text[index] == 0x0D { index += 1 }
                    if index == text.count { return .failure(Base64Failure(offset: text.count)) }
                    guard text[index] == UInt8(ascii: "=") else { return .failure(Base64Failure(offset: index - 1)) }
                    index += 1
                default:
                    break
                }
                while index < text.count, text[index] == 0x0A || text[index] == 0x0D { index += 1 }
                if index < text.count { return .failure(Base64Failure(offset: index)) }
                length = position
                finished = true
                break
            }
            let chunk = UInt32(quantum[0]) << 18 | UInt32(quantum[1]) << 12 | UInt32(quantum[2]) << 6 | UInt32(quantum[3])
            let decoded = [UInt8(chunk >> 16 & 0xFF), UInt8(chunk >> 8 & 0xFF), UInt8(chunk & 0xFF)]
            output.append(contentsOf: decoded.prefix(length - 1))
            if finished { return .success(output) }
        }
    }

    struct Base64Failure: Error, Equatable {
        var offset: Int
        var message: String { "illegal base64 data at input byte \(offset)" }
    }
}
