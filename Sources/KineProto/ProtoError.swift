/// Why a protobuf payload could not be turned into a KineCore value.
///
/// Decoding never traps: every malformed, truncated or hostile input ends up as one of these.
/// The server answers them as grpc-go answers a payload it cannot unmarshal, `INTERNAL` with
/// "grpc: error unmarshalling request: …", except an unknown sort enum, which etcd itself refuses
/// with `INVALID_ARGUMENT` (`StatusMapping.status(_:)`).
public enum ProtoError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The bytes are not a valid encoding of `message` (bad varint, length past the end, wrong
    /// wire type, truncated field...). protobuf-c does not say which, so neither do we.
    case malformed(message: String)
    /// A closed-set enum field carried a number KineCore has no case for.
    case unknownEnumValue(field: String, value: Int32)
    /// Nested `TxnRequest`/`TxnResponse` deeper than `limit` levels; refused before parsing so a
    /// hostile payload cannot exhaust the stack of protobuf-c's recursive parser.
    case nestingTooDeep(limit: Int)

    public var description: String {
        switch self {
        case .malformed(let message): "malformed \(message) payload"
        case .unknownEnumValue(let field, let value): "unknown enum value \(value) for \(field)"
        case .nestingTooDeep(let limit): "transaction nesting deeper than \(limit) levels"
        }
    }
}
