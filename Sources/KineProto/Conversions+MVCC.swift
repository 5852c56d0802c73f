internal import CEtcdProto
internal import CProtobufC
internal import KineCore

// mvccpb.KeyValue and mvccpb.Event <-> KineCore.

extension KeyValue {
    /// Copies a protobuf-c `mvccpb.KeyValue` into Swift memory.
    init(_ c: Mvccpb__KeyValue) {
        self.init(
            key: CValues.bytes(c.key), createRevision: c.create_revision, modRevision: c.mod_revision,
            version: c.version, value: CValues.bytes(c.value), lease: c.lease
        )
    }

    /// Writes this key-value into an already initialised C struct, copying bytes into `arena`.
    func fill(_ c: UnsafeMutablePointer<Mvccpb__KeyValue>, _ arena: inout Arena) {
        c.pointee.key = arena.binary(key)
        c.pointee.create_revision = createRevision
        c.pointee.mod_revision = modRevision
        c.pointee.version = version
        c.pointee.value = arena.binary(value)
        c.pointee.lease = lease
    }

    /// A standalone C copy (for singular `KeyValue` fields such as `prev_kv`).
    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Mvccpb__KeyValue> {
        let c = arena.message(mvccpb__key_value__init)
        fill(c, &arena)
        return c
    }

    /// Arena bytes needed for this key-value's struct, pointer slot and byte copies; used to
    /// size the arena up front so a big response packs from a single block.
    var arenaEstimate: Int {
        MemoryLayout<Mvccpb__KeyValue>.stride + MemoryLayout<UnsafeMutableRawPointer>.stride + key.count + value.count + 16
    }
}

extension [KeyValue] {
    /// The `n_kvs`/`kvs` pair for a repeated `KeyValue` field, laid out contiguously in `arena`.
    func toC(_ arena: inout Arena) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Mvccpb__KeyValue>?>?) {
        guard let (structs, pointers) = arena.messages(count, mvccpb__key_value__init) else { return (0, nil) }
        for (index, kv) in enumerated() {
            kv.fill(structs + index, &arena)
        }
        return (count, pointers)
    }

    var arenaEstimate: Int { reduce(0) { $0 + $1.arenaEstimate } }
}

extension Event {
    /// Copies a protobuf-c `mvccpb.Event`. An absent `kv` decodes as an empty key-value.
    init(_ c: Mvccpb__Event) throws(ProtoError) {
        self.init(
            type: try CValues.closedEnum(c.type.rawValue, "Event.type"),
            kv: c.kv.map { KeyValue($0.pointee) } ?? KeyValue(key: []),
            prevKV: c.prev_kv.map { KeyValue($0.pointee) }
        )
    }

    func fill(_ c: UnsafeMutablePointer<Mvccpb__Event>, _ arena: inout Arena) {
        c.pointee.type = Mvccpb__Event__EventType(rawValue: CValues.cRaw(type.rawValue))
        c.pointee.kv = kv.toC(&arena)
        if let prevKV { c.pointee.prev_kv = prevKV.toC(&arena) }
    }

    var arenaEstimate: Int {
        MemoryLayout<Mvccpb__Event>.stride + MemoryLayout<UnsafeMutableRawPointer>.stride
            + kv.arenaEstimate + (prevKV?.arenaEstimate ?? 0)
    }
}
