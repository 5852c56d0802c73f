/// A parsed JSON value holding what Go's decoder works from: numbers keep their literal text (Go
/// converts them per target type, and its errors quote the literal), strings keep the bytes
/// written between their quotes (jsonpb strips the quotes of a quoted number and parses the rest
/// again).
indirect enum JSONNode: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(String)
    case string(String, raw: [UInt8])
    case array([JSONNode])
    /// Members in the order written; with duplicates the last wins, as in Go's map decoding.
    case object([Member])

    struct Member: Sendable, Equatable {
        var key: String
        var value: JSONNode
    }

    /// The word Go's `UnmarshalTypeError` uses for this kind of value.
    var goKind: String {
        switch self {
        case .null: "null"
        case .bool: "bool"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}
