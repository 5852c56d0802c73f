/// Why a JSON request could not become a protobuf message, or a response could not be written.
public enum ProtoJSONError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The request's JSON does not fit the message; worded as Go's decoder words it, which is
    /// what etcd's gateway answers.
    case invalid(String)
    /// A response payload that does not parse as `message` (a bug on our side, never the client's).
    case malformedWire(message: String)

    public var description: String {
        switch self {
        case .invalid(let message): message
        case .malformedWire(let message): "malformed \(message) payload"
        }
    }
}

/// One JSON value read from a request body, ready to become a protobuf message.
public struct JSONDocument: Sendable {
    let node: JSONNode
}

/// Converts between etcd's JSON mapping (what its grpc-gateway reads and writes) and protobuf wire
/// bytes, driven by protobuf-c's descriptors, so the gateway hands the gRPC methods exactly the
/// bytes a gRPC client would.
public enum ProtoJSON {
    /// A request body's JSON as wire bytes of `message`.
    public static func wire(from document: JSONDocument, as message: MessageSchema) throws(ProtoJSONError) -> [UInt8] {
        var output: [UInt8] = []
        try ProtoJSONDecoder(schemas: .etcd).encode(document.node, as: message, into: &output)
        return output
    }

    /// A response's wire bytes as compact JSON.
    public static func json(fromWire bytes: [UInt8], as message: MessageSchema) throws(ProtoJSONError) -> [UInt8] {
        var output: [UInt8] = []
        try ProtoJSONEncoder(schemas: .etcd).encode(bytes[...], as: message, into: &output)
        return output
    }

    /// A JSON string literal as Go's `json.Marshal` writes it.
    public static func quoted(_ text: String) -> [UInt8] {
        var output: [UInt8] = []
        GoJSONText.appendQuoted(text, to: &output)
        return output
    }
}

/// Successive JSON values in a request body, read as Go's `json.Decoder` reads them: whitespace
/// between values is skipped, values may be concatenated, and bytes after the last complete value
/// are only looked at when the next one is asked for.
public struct JSONValueStream: Sendable {
    public enum Next: Sendable {
        case value(JSONDocument)
        /// The bytes so far end inside a value (or before one starts): append more.
        case needMoreBytes
        /// The body ended between values (Go's `io.EOF`).
        case endOfInput
        /// A syntax error or a body that ended inside a value, worded as Go words it.
        case failure(String)
    }

    private var buffer: [UInt8] = []
    private var offset = 0
    /// Bytes held before a value completes; a larger value fails instead of growing without bound.
    public let limit: Int

    public init(limit: Int) {
        self.limit = limit
    }

    public mutating func append(_ bytes: [UInt8]) {
        if offset > 0 && offset >= buffer.count / 2 {
            buffer.removeFirst(offset)
            offset = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete value; `endOfBody` says no more bytes will come.
    public mutating func next(endOfBody: Bool) -> Next {
        var parser = JSONParser(buffer, from: offset)
        parser.skipSpace()
        if parser.atEnd {
            offset = buffer.count
            return endOfBody ? .endOfInput : .needMoreBytes
        }
        do {
            let node = try parser.parseValue()
            // A number running to the end of what has arrived may go on in the next bytes.
            if case .number = node, parser.atEnd, !endOfBody { return .needMoreBytes }
            offset = parser.index
            return .value(JSONDocument(node: node))
        } catch {
            switch error {
            case .unexpectedEnd:
                if endOfBody { return .failure("unexpected EOF") }
                return buffer.count - offset > limit ? .failure("request body too large") : .needMoreBytes
            case .syntax(let message):
                return .failure(message)
            }
        }
    }
}
