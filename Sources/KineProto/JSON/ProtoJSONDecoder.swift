/// JSON to protobuf wire bytes as etcd's gateway reads requests: golang/protobuf's `jsonpb`
/// Unmarshaler with unknown fields allowed. A field is found by its .proto name or its lowerCamel
/// name (the latter wins when both are given), `null` leaves it unset, 64-bit integers may be
/// numbers or strings, enums names or numbers. Failures carry the message Go's decoder gives.
struct ProtoJSONDecoder {
    let schemas: ProtoSchemaSet

    func encode(_ node: JSONNode, as schema: MessageSchema, into output: inout [UInt8]) throws(ProtoJSONError) {
        let members: [JSONNode.Member]
        switch node {
        case .null: return
        case .object(let list): members = list
        default: throw Self.typeError(node, "map[string]json.RawMessage")
        }
        var byKey: [String: JSONNode] = [:]
        for member in members { byKey[member.key] = member.value }
        for field in schema.fields {
            var value = byKey[field.name]
            if let camel = byKey[field.jsonName] { value = camel }
            guard let value, value != .null else { continue }
            if field.repeated {
                guard case .array(let elements) = value else { throw Self.typeError(value, "[]json.RawMessage") }
                try encodeRepeated(elements, field, into: &output)
            } else {
                try encodeSingular(value, field, into: &output, keepZero: field.inOneof)
            }
        }
    }

    private func encodeRepeated(_ elements: [JSONNode], _ field: FieldSchema, into output: inout [UInt8]) throws(ProtoJSONError) {
        switch field.kind {
        case .string, .bytes, .message:
            for element in elements { try encodeSingular(element, field, into: &output, keepZero: true) }
        default:
            // Packed, as proto3 writes repeated scalars.
            var run: [UInt8] = []
            for element in elements { try appendScalar(element, field, into: &run) }
            guard !elements.isEmpty else { return }
            ProtoWire.appendLengthDelimited(field.number, run, to: &output)
        }
    }

    private func encodeSingular(_ node: JSONNode, _ field: FieldSchema, into output: inout [UInt8], keepZero: Bool) throws(ProtoJSONError) {
        switch field.kind {
        case .string:
            guard case .string(let text, _) = node else {
                if node == .null, keepZero { return ProtoWire.appendLengthDelimited(field.number, [], to: &output) }
                throw Self.typeError(node, "string")
            }
            if text.isEmpty && !keepZero { return }
            ProtoWire.appendLengthDelimited(field.number, Array(text.utf8), to: &output)
        case .bytes:
            let bytes = try Self.bytes(node)
            if bytes.isEmpty && !keepZero { return }
            ProtoWire.appendLengthDelimited(field.number, bytes, to: &output)
        case .message(let name):
            guard let nested = schemas[name] else { throw .invalid("unknown message type \(name)") }
            var payload: [UInt8] = []
            try encode(node, as: nested, into: &payload)
            ProtoWire.appendLengthDelimited(field.number, payload, to: &output)
        default:
            var value: [UInt8] = []
            let isZero = try appendScalar(node, field, into: &value)
            if isZero && !keepZero { return }
            ProtoWire.appendTag(field.number, Self.wireType(field.kind), to: &output)
            output.append(contentsOf: value)
        }
    }

    private static func wireType(_ kind: FieldSchema.Kind) -> ProtoWire.WireType {
        switch kind {
        case .fixed64, .sfixed64, .double: .fixed64
        case .fixed32, .sfixed32, .float: .fixed32
        default: .varint
        }
    }

    /// Appends a scalar's wire value (no tag); `true` if it is the zero value.
    @discardableResult
    private func appendScalar(_ node: JSONNode, _ field: FieldSchema, into output: inout [UInt8]) throws(ProtoJSONError) -> Bool {
        switch field.kind {
        case .bool:
            let value: Bool
            switch node {
            case .bool(let flag): value = flag
            case .null: value = false
            default: throw Self.typeError(node, "bool")
            }
            output.append(value ? 1 : 0)
            return !value
        case .int32, .sint32, .sfixed32:
            let value = Int32(try Self.integer(node, goType: "int32", range: Int64(Int32.min)...Int64(Int32.max)))
            switch field.kind {
            case .sint32: ProtoWire.appendVarint(ProtoWire.zigZag(Int64(value)), to: &output)
            case .sfixed32: ProtoWire.appendFixed(UInt64(UInt32(bitPattern: value)), bytes: 4, to: &output)
            default: ProtoWire.appendVarint(UInt64(bitPattern: Int64(value)), to: &output)
            }
            return value == 0
        case .int64, .sint64, .sfixed64:
            let value = try Self.integer(node, goType: "int64", range: Int64.min...Int64.max)
            switch field.kind {
            case .sint64: ProtoWire.appendVarint(ProtoWire.zigZag(value), to: &output)
            case .sfixed64: ProtoWire.appendFixed(UInt64(bitPattern: value), bytes: 8, to: &output)
            default: ProtoWire.appendVarint(UInt64(bitPattern: value), to: &output)
            }
            return value == 0
        case .uint32, .fixed32:
            let value = UInt32(try Self.unsigned(node, goType: "uint32", max: UInt64(UInt32.max)))
            if field.kind == .fixed32 {
                ProtoWire.appendFixed(UInt64(value), bytes: 4, to: &output)
            } else {
                ProtoWire.appendVarint(UInt64(value), to: &output)
            }
            return value == 0
        case .uint64, .fixed64:
            let value = try Self.unsigned(node, goType: "uint64", max: UInt64.max)
            if field.kind == .fixed64 {
                ProtoWire.appendFixed(value, bytes: 8, to: &output)
            } else {
                ProtoWire.appendVarint(value, to: &output)
            }
            return value == 0
        case .float, .double:
            let value = try Self.floating(node, goType: field.kind == .float ? "float32" : "float64")
            if field.kind == .float {
                ProtoWire.appendFixed(UInt64(Float(value).bitPattern), bytes: 4, to: &output)
            } else {
                ProtoWire.appendFixed(value.bitPattern, bytes: 8, to: &output)
            }
            return value == 0
        case .enumeration(let enumeration):
            let number: Int32
            if case .string(_, let raw) = node {
                let name = String(decoding: raw, as: UTF8.self)
                guard let known = enumeration.numbersByName[name] else {
                    let quotedRaw = "\"" + name + "\""
                    throw .invalid("unknown value \(GoQuote.quote(quotedRaw)) for enum \(enumeration.name)")
                }
                number = known
            } else {
                number = Int32(
                    try Self.integer(node, goType: "protoreflect.EnumNumber", range: Int64(Int32.min)...Int64(Int32.max), unquote: false))
            }
            ProtoWire.appendVarint(UInt64(bitPattern: Int64(number)), to: &output)
            return number == 0
        case .string, .bytes, .message:
            throw .invalid("\(field.name) is not a scalar")
        }
    }

    // MARK: values as Go's json.Unmarshal reads them

    /// jsonpb strips one pair of quotes around a number and parses what is inside as JSON.
    private static func unquoted(_ node: JSONNode) throws(ProtoJSONError) -> JSONNode {
        guard case .string(_, let raw) = node else { return node }
        do {
            return try JSONParser.parseDocument(raw)
        } catch {
            switch error {
            case .unexpectedEnd: throw .invalid("unexpected end of JSON input")
            case .syntax(let message): throw .invalid(message)
            }
        }
    }

    private static func integer(
        _ node: JSONNode, goType: String, range: ClosedRange<Int64>, unquote: Bool = true
    ) throws(ProtoJSONError) -> Int64 {
        let value = unquote ? try unquoted(node) : node
        switch value {
        case .null: return 0
        case .number(let literal):
            guard let number = Int64(literal), range.contains(number) else {
                throw .invalid("json: cannot unmarshal number \(literal) into Go value of type \(goType)")
            }
            return number
        default:
            throw typeError(value, goType)
        }
    }

    private static func unsigned(_ node: JSONNode, goType: String, max: UInt64) throws(ProtoJSONError) -> UInt64 {
        let value = try unquoted(node)
        switch value {
        case .null: return 0
        case .number(let literal):
            guard let number = UInt64(literal), number <= max else {
                throw .invalid("json: cannot unmarshal number \(literal) into Go value of type \(goType)")
            }
            return number
        default:
            throw typeError(value, goType)
        }
    }

    private static func floating(_ node: JSONNode, goType: String) throws(ProtoJSONError) -> Double {
        if case .string(let text, _) = node {
            switch text {
            case "NaN": return .nan
            case "Infinity": return .infinity
            case "-Infinity": return -.infinity
            default: break
            }
        }
        let value = try unquoted(node)
        switch value {
        case .null: return 0
        case .number(let literal):
            guard let number = Double(literal), number.isFinite else {
                throw .invalid("json: cannot unmarshal number \(literal) into Go value of type \(goType)")
            }
            return number
        default:
            throw typeError(value, goType)
        }
    }

    /// `json.Unmarshal` into `[]byte`: a base64 string, or an array of numbers 0-255.
    private static func bytes(_ node: JSONNode) throws(ProtoJSONError) -> [UInt8] {
        switch node {
        case .null:
            return []
        case .string(let text, _):
            switch GoJSONText.decodeBase64(Array(text.utf8)) {
            case .success(let bytes): return bytes
            case .failure(let failure): throw .invalid(failure.message)
            }
        case .array(let elements):
            var bytes: [UInt8] = []
            for element in elements {
                bytes.append(UInt8(try integer(element, goType: "uint8", range: 0...255, unquote: false)))
            }
            return bytes
        default:
            throw typeError(node, "[]uint8")
        }
    }

    static func typeError(_ node: JSONNode, _ goType: String) -> ProtoJSONError {
        .invalid("json: cannot unmarshal \(node.goKind) into Go value of type \(goType)")
    }
}

/// Go's `strconv.Quote`, used where Go's messages quote raw input with `%q`.
enum GoQuote {
    static func quote(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\u{07}": result += "\\a"
            case "\u{08}": result += "\\b"
            case "\u{0C}": result += "\\f"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\u{0B}": result += "\\v"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    result += "\\x" + String(scalar.value, radix: 16).leftPadded(to: 2)
                } else if scalar.value >= 0x80 && scalar.value < 0xA0 {
                    result += "\\u" + String(scalar.value, radix: 16).leftPadded(to: 4)
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
