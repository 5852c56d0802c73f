internal import CEtcdProto
internal import CProtobufC

/// What the JSON mapping needs to know about a protobuf message type, copied once out of
/// protobuf-c's generated descriptors so the converters never touch C memory.
///
/// Message fields name their type by full name (`etcdserverpb.RequestOp`), looked up in the
/// `ProtoSchemaSet`, because etcd's types are recursive (a `RequestOp` holds a `TxnRequest`
/// that holds `RequestOp`s).
public struct MessageSchema: Sendable {
    /// Full name, e.g. `etcdserverpb.RangeRequest`.
    public let name: String
    /// In field-number order, which in etcd's protos is also declaration order (the order jsonpb
    /// writes them in).
    let fields: [FieldSchema]
    private let indexByNumber: [UInt32: Int]

    init(name: String, fields: [FieldSchema]) {
        self.name = name
        self.fields = fields.sorted { $0.number < $1.number }
        var index: [UInt32: Int] = [:]
        for (position, field) in self.fields.enumerated() { index[field.number] = position }
        indexByNumber = index
    }

    func field(number: UInt32) -> FieldSchema? {
        indexByNumber[number].map { fields[$0] }
    }
}

struct FieldSchema: Sendable {
    enum Kind: Sendable, Equatable {
        case int32, sint32, sfixed32, int64, sint64, sfixed64
        case uint32, fixed32, uint64, fixed64
        case float, double, bool, string, bytes
        case enumeration(EnumSchema)
        /// The full name of the message type.
        case message(String)
    }

    /// The name in the .proto (`create_revision`, `ID`): what jsonpb with OrigName writes.
    let name: String
    /// protoc's lowerCamel name (`createRevision`), also accepted on input.
    let jsonName: String
    let number: UInt32
    let repeated: Bool
    /// A member of a oneof: present even when it holds a zero value.
    let inOneof: Bool
    let kind: Kind

    /// protoc's json_name: underscores dropped, the letter after each one capitalised.
    static func jsonName(_ name: String) -> String {
        var result = ""
        var capitalizeNext = false
        for character in name {
            if character == "_" {
                capitalizeNext = true
            } else if capitalizeNext {
                result += character.uppercased()
                capitalizeNext = false
            } else {
                result.append(character)
            }
        }
        return result
    }
}

struct EnumSchema: Sendable, Equatable {
    /// Full name, e.g. `etcdserverpb.RangeRequest.SortOrder`.
    let name: String
    let valuesByNumber: [Int32: String]
    let numbersByName: [String: Int32]
}

/// Every message type reachable from the roots it was built with.
public struct ProtoSchemaSet: Sendable {
    private var messages: [String: MessageSchema] = [:]

    public subscript(name: String) -> MessageSchema? { messages[name] }

    /// The request and response types of every etcd v3 RPC (`rpc.proto`, which pulls in
    /// `kv.proto` and `auth.proto` types).
    public static let etcd: ProtoSchemaSet = {
        var set = ProtoSchemaSet()
        for root in etcdRoots { set.add(root) }
        return set
    }()

    private mutating func add(_ descriptor: ProtobufCMessageDescriptor) {
        let name = String(cString: descriptor.name)
        guard messages[name] == nil else { return }
        var fields: [FieldSchema] = []
        var nested: [ProtobufCMessageDescriptor] = []
        for index in 0..<Int(descriptor.n_fields) {
            let field = descriptor.fields[index]
            let fieldName = String(cString: field.name)
            let kind: FieldSchema.Kind
            switch field.type {
            case PROTOBUF_C_TYPE_INT32: kind = .int32
            case PROTOBUF_C_TYPE_SINT32: kind = .sint32
            case PROTOBUF_C_TYPE_SFIXED32: kind = .sfixed32
            case PROTOBUF_C_TYPE_INT64: kind = .int64
            case PROTOBUF_C_TYPE_SINT64: kind = .sint64
            case PROTOBUF_C_TYPE_SFIXED64: kind = .sfixed64
            case PROTOBUF_C_TYPE_UINT32: kind = .uint32
            case PROTOBUF_C_TYPE_FIXED32: kind = .fixed32
            case PROTOBUF_C_TYPE_UINT64: kind = .uint64
            case PROTOBUF_C_TYPE_FIXED64: kind = .fixed64
            case PROTOBUF_C_TYPE_FLOAT: kind = .float
            case PROTOBUF_C_TYPE_DOUBLE: kind = .double
            case PROTOBUF_C_TYPE_BOOL: kind = .bool
            case PROTOBUF_C_TYPE_STRING: kind = .string
            case PROTOBUF_C_TYPE_BYTES: kind = .bytes
            case PROTOBUF_C_TYPE_ENUM:
                guard let raw = field.descriptor else { continue }
                kind = .enumeration(Self.enumSchema(raw.assumingMemoryBound(to: ProtobufCEnumDescriptor.self).pointee))
            case PROTOBUF_C_TYPE_MESSAGE:
                guard let raw = field.descriptor else { continue }
                let message = raw.assumingMemoryBound(to: ProtobufCMessageDescriptor.self).pointee
                nested.append(message)
                kind = .message(String(cString: message.name))
            default:
                continue
            }
            fields.append(
                FieldSchema(
                    name: fieldName, jsonName: FieldSchema.jsonName(fieldName), number: field.id,
                    repeated: field.label == PROTOBUF_C_LABEL_REPEATED,
                    inOneof: field.flags & UInt32(PROTOBUF_C_FIELD_FLAG_ONEOF.rawValue) != 0, kind: kind))
        }
        messages[name] = MessageSchema(name: name, fields: fields)
        for message in nested { add(message) }
    }

    private static func enumSchema(_ descriptor: ProtobufCEnumDescriptor) -> EnumSchema {
        var byNumber: [Int32: String] = [:]
        var byName: [String: Int32] = [:]
        for index in 0..<Int(descriptor.n_values) {
            let value = descriptor.values[index]
            let name = String(cString: value.name)
            // With aliases the first name is the one written.
            if byNumber[Int32(value.value)] == nil { byNumber[Int32(value.value)] = name }
            byName[name] = Int32(value.value)
        }
        return EnumSchema(name: String(cString: descriptor.name), valuesByNumber: byNumber, numbersByName: byName)
    }
}
