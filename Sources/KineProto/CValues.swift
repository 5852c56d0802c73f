internal import CEtcdProto
internal import CProtobufC
internal import KineCore

/// Copying scalar-ish protobuf-c values (bytes, strings, booleans, enums, headers) into Swift
/// and back. Every copy-out happens before `free_unpacked`, so nothing here returns a pointer.
enum CValues {
    /// A proto3 `bytes` field as a fresh Swift array.
    @inline(__always)
    static func bytes(_ binary: ProtobufCBinaryData) -> [UInt8] {
        guard binary.len > 0, let data = binary.data else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: binary.len))
    }

    /// A proto3 `string` field. protobuf-c does not check UTF-8; invalid sequences become U+FFFD.
    static func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
        guard let pointer else { return "" }
        return String(cString: pointer)
    }

    /// A `repeated string` field.
    static func strings(_ count: Int, _ array: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> [String] {
        guard count > 0, let array else { return [] }
        return (0..<count).map { string(array[$0]) }
    }

    @inline(__always)
    static func bool(_ value: protobuf_c_boolean) -> Bool { value != 0 }

    @inline(__always)
    static func cBool(_ value: Bool) -> protobuf_c_boolean { value ? 1 : 0 }

    /// The number carried by a C enum field; negative wire values survive the round trip.
    @inline(__always)
    static func raw(_ value: UInt32) -> Int32 { Int32(bitPattern: value) }

    /// The C enum payload for a Swift raw value.
    @inline(__always)
    static func cRaw(_ value: Int32) -> UInt32 { UInt32(bitPattern: value) }

    /// Maps a wire enum number onto a closed KineCore enum, or reports which field was bad.
    static func closedEnum<E: RawRepresentable>(_ value: UInt32, _ field: String) throws(ProtoError) -> E
    where E.RawValue == Int32 {
        guard let result = E(rawValue: raw(value)) else {
            throw .unknownEnumValue(field: field, value: raw(value))
        }
        return result
    }

    /// A possibly absent `ResponseHeader` submessage; absent means all zero, as in proto3.
    static func header(_ pointer: UnsafeMutablePointer<Etcdserverpb__ResponseHeader>?) -> ResponseHeader {
        guard let c = pointer?.pointee else { return ResponseHeader() }
        return ResponseHeader(clusterID: c.cluster_id, memberID: c.member_id, revision: c.revision, raftTerm: c.raft_term)
    }

    /// A C `ResponseHeader` in `arena`. Always present: etcd sends a header on every response.
    static func cHeader(_ header: ResponseHeader, _ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__ResponseHeader> {
        let c = arena.message(etcdserverpb__response_header__init)
        c.pointee.cluster_id = header.clusterID
        c.pointee.member_id = header.memberID
        c.pointee.revision = header.revision
        c.pointee.raft_term = header.raftTerm
        return c
    }
}

extension CValues {
    /// Converts a repeated message field (`n_foo`, `foo`) element by element.
    static func list<C, S>(
        _ count: Int, _ array: UnsafeMutablePointer<UnsafeMutablePointer<C>?>?,
        _ convert: (C) throws(ProtoError) -> S
    ) throws(ProtoError) -> [S] {
        guard count > 0, let array else { return [] }
        var result: [S] = []
        result.reserveCapacity(count)
        for index in 0..<count {
            // protobuf-c fills every slot; a hole would be its bug, but don't trap on it.
            guard let element = array[index] else { throw .malformed(message: String(describing: C.self)) }
            result.append(try convert(element.pointee))
        }
        return result
    }
}
