internal import CProtobufC

/// The two generic bridges between Swift byte arrays and protobuf-c's generated functions.
///
/// Every public encoder and decoder is one call into these, passing the generated
/// `foo__unpack`/`foo__free_unpacked` or `foo__get_packed_size`/`foo__pack` functions, so the
/// only unsafe lifetimes to reason about are here and in `Arena`.
enum CMessage {
    typealias Unpack<M> = (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) -> UnsafeMutablePointer<M>?
    typealias FreeUnpacked<M> = (UnsafeMutablePointer<M>?, UnsafeMutablePointer<ProtobufCAllocator>?) -> Void
    typealias PackedSize<M> = (UnsafePointer<M>?) -> Int
    typealias Pack<M> = (UnsafePointer<M>?, UnsafeMutablePointer<UInt8>?) -> Int

    /// Parses `bytes` with protobuf-c, lets `convert` copy everything it needs into Swift values,
    /// then frees the C message. `convert` must not keep any pointer it sees.
    static func decode<M, R>(
        _ bytes: [UInt8], _ name: String,
        _ unpack: Unpack<M>, _ freeUnpacked: FreeUnpacked<M>,
        _ convert: (borrowing M) throws(ProtoError) -> R
    ) throws(ProtoError) -> R {
        let parsed = bytes.withUnsafeBufferPointer { buffer in
            // protobuf-c reads nothing when the length is 0, but give it a valid pointer anyway.
            withUnsafePointer(to: UInt8(0)) { empty in
                unpack(nil, buffer.count, buffer.baseAddress ?? empty)
            }
        }
        guard let parsed else { throw .malformed(message: name) }
        defer { freeUnpacked(parsed, nil) }
        return try convert(parsed.pointee)
    }

    /// Builds the C form of a message in a fresh arena (`build` returns the root), packs it into
    /// one exactly-sized array, and frees the arena.
    static func encode<M>(
        capacity: Int,
        _ packedSize: PackedSize<M>, _ pack: Pack<M>,
        _ build: (inout Arena) -> UnsafeMutablePointer<M>
    ) -> [UInt8] {
        var arena = Arena(capacity: capacity)
        let root = UnsafePointer(build(&arena))
        let size = packedSize(root)
        guard size > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = pack(root, buffer.baseAddress)
        }
    }
}
