public import KineCore

/// A message read field by field on top of `ProtoWire`, for the small messages of the Auth,
/// Lock and Election services (strings, bytes, integers and a few sub-messages), which need no
/// protobuf-c struct. proto3 rules: an absent field reads as its zero value; the last
/// occurrence of a scalar wins.
public struct ProtoFields: Sendable {
    private var values: [UInt32: [ProtoWireValue]] = [:]

    enum ProtoWireValue: Sendable {
        case varint(UInt64)
        case bytes([UInt8])
        case fixed(UInt64)
    }

    /// `message` names the type in the error (`etcdserverpb.AuthUserAddRequest`).
    public init(_ bytes: [UInt8], message: String) throws(ProtoError) {
        try self.init(bytes[...], message: message)
    }

    init(_ bytes: ArraySlice<UInt8>, message: String) throws(ProtoError) {
        let fields: [(number: UInt32, value: ProtoWire.Value)]
        do {
            fields = try ProtoWire.fields(bytes)
        } catch {
            throw .malformed(message: message)
        }
        for (number, value) in fields {
            let stored: ProtoWireValue
            switch value {
            case .varint(let v): stored = .varint(v)
            case .fixed64(let v): stored = .fixed(v)
            case .fixed32(let v): stored = .fixed(UInt64(v))
            case .bytes(let slice): stored = .bytes(Array(slice))
            }
            values[number, default: []].append(stored)
        }
    }

    public func bytes(_ number: UInt32) -> [UInt8] {
        guard case .bytes(let bytes)? = values[number]?.last else { return [] }
        return bytes
    }

    public func string(_ number: UInt32) -> String { String(decoding: bytes(number), as: UTF8.self) }

    public func uint64(_ number: UInt32) -> UInt64 {
        switch values[number]?.last {
        case .varint(let v)?, .fixed(let v)?: return v
        default: return 0
        }
    }

    public func int64(_ number: UInt32) -> Int64 { Int64(bitPattern: uint64(number)) }

    public func bool(_ number: UInt32) -> Bool { uint64(number) != 0 }

    /// Whether the field was sent at all (an empty sub-message is present).
    public func has(_ number: UInt32) -> Bool { values[number] != nil }

    /// A sub-message; nil when absent.
    public func message(_ number: UInt32, _ name: String) throws(ProtoError) -> ProtoFields? {
        guard has(number) else { return nil }
        return try ProtoFields(bytes(number), message: name)
    }

    /// Every occurrence of a repeated length-delimited field (strings, bytes, messages).
    public func repeatedBytes(_ number: UInt32) -> [[UInt8]] {
        (values[number] ?? []).compactMap { value in
            if case .bytes(let bytes) = value { return bytes }
            return nil
        }
    }
}

/// Writes a message field by field (proto3: zero values are left out).
public struct ProtoFieldWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func uint64(_ number: UInt32, _ value: UInt64) {
        guard value != 0 else { return }
        ProtoWire.appendTag(number, .varint, to: &bytes)
        ProtoWire.appendVarint(value, to: &bytes)
    }

    public mutating func int64(_ number: UInt32, _ value: Int64) { uint64(number, UInt64(bitPattern: value)) }

    public mutating func bool(_ number: UInt32, _ value: Bool) { uint64(number, value ? 1 : 0) }

    public mutating func bytes(_ number: UInt32, _ value: [UInt8]) {
        guard !value.isEmpty else { return }
        ProtoWire.appendLengthDelimited(number, value, to: &bytes)
    }

    public mutating func string(_ number: UInt32, _ value: String) { bytes(number, Array(value.utf8)) }

    /// A repeated string keeps empty elements (each is a field of its own).
    public mutating func repeatedString(_ number: UInt32, _ values: [String]) {
        for value in values { ProtoWire.appendLengthDelimited(number, Array(value.utf8), to: &bytes) }
    }

    /// A sub-message is written even when empty (presence is meaningful).
    public mutating func message(_ number: UInt32, _ message: ProtoFieldWriter) {
        ProtoWire.appendLengthDelimited(number, message.bytes, to: &bytes)
    }

    public mutating func header(_ number: UInt32, _ header: ResponseHeader) {
        var writer = ProtoFieldWriter()
        writer.uint64(1, header.clusterID)
        writer.uint64(2, header.memberID)
        writer.int64(3, header.revision)
        writer.uint64(4, header.raftTerm)
        message(number, writer)
    }

    public mutating func keyValue(_ number: UInt32, _ kv: KeyValue) {
        var writer = ProtoFieldWriter()
        writer.bytes(1, kv.key)
        writer.int64(2, kv.createRevision)
        writer.int64(3, kv.modRevision)
        writer.int64(4, kv.version)
        writer.bytes(5, kv.value)
        writer.int64(6, kv.lease)
        message(number, writer)
    }
}
