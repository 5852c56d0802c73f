/// Protobuf wire bytes to JSON as etcd's gateway writes them: golang/protobuf's `jsonpb` with
/// `OrigName: true` and `EmitDefaults: false`. Field names as in the .proto, fields in number
/// order, zero values and empty lists left out (a oneof member is written even when zero, a
/// sub-message that is present even when empty), 64-bit integers as decimal strings, 32-bit ones
/// as numbers, bytes as standard base64, enums by name.
struct ProtoJSONEncoder {
    let schemas: ProtoSchemaSet

    func encode(_ bytes: ArraySlice<UInt8>, as schema: MessageSchema, into output: inout [UInt8]) throws(ProtoJSONError) {
        let wireFields: [(number: UInt32, value: ProtoWire.Value)]
        do {
            wireFields = try ProtoWire.fields(bytes)
        } catch {
            throw .malformedWire(message: schema.name)
        }
        var valuesByNumber: [UInt32: [ProtoWire.Value]] = [:]
        for field in wireFields { valuesByNumber[field.number, default: []].append(field.value) }

        output.append(UInt8(ascii: "{"))
        var first = true
        for field in schema.fields {
            guard let values = valuesByNumber[field.number] else { continue }
            var rendered: [UInt8] = []
            if field.repeated {
                let elements = try expandPacked(values, field, schema)
                guard !elements.isEmpty else { continue }
                rendered.append(UInt8(ascii: "["))
                for (position, element) in elements.enumerated() {
                    if position > 0 { rendered.append(UInt8(ascii: ",")) }
                    try encodeSingular(element, field, schema, into: &rendered)
                }
                rendered.append(UInt8(ascii: "]"))
            } else if case .message = field.kind {
                // Repeated occurrences of a singular message merge, which on the wire is their
                // concatenation.
                var merged: [UInt8] = []
                for value in values {
                    guard case .bytes(let payload) = value else { throw .malformedWire(message: schema.name) }
                    merged.append(contentsOf: payload)
                }
                try encodeSingular(.bytes(merged[...]), field, schema, into: &rendered)
            } else {
                guard let last = values.last else { continue }
                if !field.inOneof && Self.isZero(last) { continue }
                try encodeSingular(last, field, schema, into: &rendered)
            }
            if !first { output.append(UInt8(ascii: ",")) }
            first = false
            GoJSONText.appendQuoted(field.name, to: &output)
            output.append(UInt8(ascii: ":"))
            output.append(contentsOf: rendered)
        }
        output.append(UInt8(ascii: "}"))
    }

    private static func isZero(_ value: ProtoWire.Value) -> Bool {
        switch value {
        case .varint(let number), .fixed64(let number): return number == 0
        case .fixed32(let number): return number == 0
        case .bytes(let payload): return payload.isEmpty
        }
    }

    /// A repeated scalar may arrive packed (one length-delimited run) or one value per tag.
    private func expandPacked(
        _ values: [ProtoWire.Value], _ field: FieldSchema, _ schema: MessageSchema
    ) throws(ProtoJSONError) -> [ProtoWire.Value] {
        let packedType: ProtoWire.WireType?
        switch field.kind {
        case .string, .bytes, .message: packedType = nil
        case .fixed64, .sfixed64, .double: packedType = .fixed64
        case .fixed32, .sfixed32, .float: packedType = .fixed32
        default: packedType = .varint
        }
        guard let packedType else { return values }
        var result: [ProtoWire.Value] = []
        for value in values {
            guard case .bytes(let run) = value else {
                result.append(value)
                continue
            }
            var index = run.startIndex
            do {
                while index < run.endIndex {
                    switch packedType {
                    case .varint:
                        result.append(.varint(try ProtoWire.readVarint(run, &index)))
                    case .fixed64, .fixed32:
                        let width = packedType == .fixed64 ? 8 : 4
                        guard run.endIndex - index >= width else { throw ProtoWire.Malformed() }
                        var number: UInt64 = 0
                        for offset in 0..<width { number |= UInt64(run[index + offset]) << (8 * UInt64(offset)) }
                        index += width
                        result.append(width == 8 ? .fixed64(number) : .fixed32(UInt32(truncatingIfNeeded: number)))
                    case .lengthDelimited:
                        throw ProtoWire.Malformed()
                    }
                }
            } catch {
                throw .malformedWire(message: schema.name)
            }
        }
        return result
    }

    private func encodeSingular(
        _ value: ProtoWire.Value, _ field: FieldSchema, _ schema: MessageSchema, into output: inout [UInt8]
    ) throws(ProtoJSONError) {
        func text(_ string: String) { output.append(contentsOf: Array(string.utf8)) }
        switch (field.kind, value) {
        case (.int32, .varint(let raw)):
            text(String(Int32(truncatingIfNeeded: raw)))
        case (.sfixed32, .fixed32(let raw)):
            text(String(Int32(bitPattern: raw)))
        case (.sint32, .varint(let raw)):
            text(String(Int32(truncatingIfNeeded: ProtoWire.unZigZag(raw))))
        case (.uint32, .varint(let raw)):
            text(String(UInt32(truncatingIfNeeded: raw)))
        case (.fixed32, .fixed32(let raw)):
            text(String(raw))
        case (.int64, .varint(let raw)), (.sfixed64, .fixed64(let raw)):
            text("\"\(Int64(bitPattern: raw))\"")
        case (.sint64, .varint(let raw)):
            text("\"\(ProtoWire.unZigZag(raw))\"")
        case (.uint64, .varint(let raw)), (.fixed64, .fixed64(let raw)):
            text("\"\(raw)\"")
        case (.bool, .varint(let raw)):
            text(raw != 0 ? "true" : "false")
        case (.float, .fixed32(let raw)):
            Self.appendFloat(Double(Float(bitPattern: raw)), to: &output)
        case (.double, .fixed64(let raw)):
            Self.appendFloat(Double(bitPattern: raw), to: &output)
        case (.string, .bytes(let payload)):
            GoJSONText.appendQuoted(String(decoding: payload, as: UTF8.self), to: &output)
        case (.bytes, .bytes(let payload)):
            output.append(UInt8(ascii: "\""))
            GoJSONText.appendBase64(Array(payload), to: &output)
            output.append(UInt8(ascii: "\""))
        case (.enumeration(let enumeration), .varint(let raw)):
            let number = Int32(truncatingIfNeeded: raw)
            if let name = enumeration.valuesByNumber[number] {
                GoJSONText.appendQuoted(name, to: &output)
            } else {
                text(String(number))
            }
        case (.message(let name), .bytes(let payload)):
            guard let nested = schemas[name] else { throw .malformedWire(message: name) }
            try encode(payload, as: nested, into: &output)
        default:
            throw .malformedWire(message: schema.name)
        }
    }

    private static func appendFloat(_ value: Double, to output: inout [UInt8]) {
        let text: String
        if value.isNaN {
            text = "\"NaN\""
        } else if value.isInfinite {
            text = value > 0 ? "\"Infinity\"" : "\"-Infinity\""
        } else if value == value.rounded(), abs(value) < 1e21 {
            text = String(Int64(value))
        } else {
            text = "\(value)"
        }
        output.append(contentsOf: Array(text.utf8))
    }
}
