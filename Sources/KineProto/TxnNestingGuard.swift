/// Refuses deeply nested transactions before protobuf-c parses them.
///
/// `TxnRequest` contains `RequestOp`s that may contain a `TxnRequest` again (and likewise for
/// responses). protobuf-c's unpacker, and our conversion to Swift, recurse once per level with no
/// limit, so a few megabytes of `22 02 22 00 ...` could overflow the stack. This walks just the
/// recursive path of the wire format (no allocation) and throws past `limit` levels. etcd itself
/// never needs more than a handful; kube-apiserver sends depth 1.
enum TxnNestingGuard {
    /// Maximum number of `TxnRequest`/`TxnResponse` levels, the outermost included.
    static let limit = 64

    /// Field numbers along the recursive path.
    struct Path {
        /// Fields of the txn message holding ops (`success`/`failure`, or `responses`).
        var opFields: (Int, Int)
        /// Field of the op holding a nested txn (`request_txn` / `response_txn`).
        var nestedTxnField: Int

        static let request = Path(opFields: (2, 3), nestedTxnField: 4)
        static let response = Path(opFields: (3, 3), nestedTxnField: 4)
    }

    /// Checks `bytes` as a txn message, or as a single op when `startsAtOp` is true.
    static func check(_ bytes: [UInt8], path: Path, startsAtOp: Bool = false) throws(ProtoError) {
        try bytes.withUnsafeBufferPointer { (buffer) throws(ProtoError) in
            var reader = WireReader(buffer)
            if startsAtOp {
                try walkOp(&reader, path: path, depth: 0)
            } else {
                try walkTxn(&reader, path: path, depth: 1)
            }
        }
    }

    private static func walkTxn(_ reader: inout WireReader, path: Path, depth: Int) throws(ProtoError) {
        guard depth <= limit else { throw .nestingTooDeep(limit: limit) }
        while let field = try reader.next() {
            if let body = field.body, field.number == path.opFields.0 || field.number == path.opFields.1 {
                var inner = body
                try walkOp(&inner, path: path, depth: depth)
            }
        }
    }

    private static func walkOp(_ reader: inout WireReader, path: Path, depth: Int) throws(ProtoError) {
        while let field = try reader.next() {
            if let body = field.body, field.number == path.nestedTxnField {
                var inner = body
                try walkTxn(&inner, path: path, depth: depth + 1)
            }
        }
    }
}

/// Minimal protobuf wire-format walker: field numbers, and the bodies of length-delimited fields.
/// Anything a conforming parser would reject is reported as malformed.
struct WireReader {
    struct Field {
        var number: Int
        /// Reader over the payload of a length-delimited (wire type 2) field, otherwise nil.
        var body: WireReader?
    }

    private let buffer: UnsafeBufferPointer<UInt8>
    private var offset: Int
    private let end: Int

    init(_ buffer: UnsafeBufferPointer<UInt8>) {
        self.init(buffer, from: 0, to: buffer.count)
    }

    private init(_ buffer: UnsafeBufferPointer<UInt8>, from: Int, to: Int) {
        self.buffer = buffer
        offset = from
        end = to
    }

    /// The next field, or nil at the end of this message.
    mutating func next() throws(ProtoError) -> Field? {
        guard offset < end else { return nil }
        let key = try varint()
        let number = Int(truncatingIfNeeded: key >> 3)
        guard number > 0 else { throw .malformed(message: "field key") }
        switch key & 7 {
        case 0:
            _ = try varint()
            return Field(number: number, body: nil)
        case 1:
            try skip(8)
            return Field(number: number, body: nil)
        case 5:
            try skip(4)
            return Field(number: number, body: nil)
        case 2:
            let length = try varint()
            guard length <= UInt64(end - offset) else { throw .malformed(message: "length-delimited field") }
            let start = offset
            offset += Int(length)
            return Field(number: number, body: WireReader(buffer, from: start, to: offset))
        default:
            // Groups (3, 4) are not proto3 and protobuf-c rejects them; 6 and 7 do not exist.
            throw .malformed(message: "wire type")
        }
    }

    private mutating func skip(_ count: Int) throws(ProtoError) {
        guard end - offset >= count else { throw .malformed(message: "fixed-width field") }
        offset += count
    }

    private mutating func varint() throws(ProtoError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while offset < end, shift < 64 {
            let byte = buffer[offset]
            offset += 1
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
        throw .malformed(message: "varint")
    }
}
