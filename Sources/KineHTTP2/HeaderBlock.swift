/// An ordered list of header fields stored contiguously, so one can be handed to nghttp2 as an
/// `nghttp2_nv` array without per-field allocations. Static blocks (`:status 200`, `grpc-status 0`)
/// are built once and reused.
struct HeaderBlock: Sendable {
    struct Field: Sendable {
        var nameStart: Int
        var nameCount: Int
        var valueStart: Int
        var valueCount: Int
    }

    private(set) var storage: [UInt8] = []
    private(set) var fields: [Field] = []

    init() {}

    init(_ pairs: [(String, String)]) {
        for (name, value) in pairs { append(name, value) }
    }

    mutating func append(_ name: String, _ value: String) {
        let nameStart = storage.count
        storage.append(contentsOf: name.utf8)
        let valueStart = storage.count
        storage.append(contentsOf: value.utf8)
        fields.append(
            Field(nameStart: nameStart, nameCount: valueStart - nameStart, valueStart: valueStart, valueCount: storage.count - valueStart)
        )
    }

    var count: Int { fields.count }

    /// The fields as Swift strings (tests, logging).
    var pairs: [(String, String)] {
        fields.map { field in
            (
                String(decoding: storage[field.nameStart..<field.nameStart + field.nameCount], as: UTF8.self),
                String(decoding: storage[field.valueStart..<field.valueStart + field.valueCount], as: UTF8.self)
            )
        }
    }
}
