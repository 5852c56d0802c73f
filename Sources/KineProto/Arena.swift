internal import CProtobufC

/// Bump allocator holding every C struct, pointer array and byte copy that protobuf-c needs to
/// pack one message.
///
/// protobuf-c packs from C structs whose fields are raw pointers, so encoding a Swift value means
/// building a short-lived C object graph. Allocating each node separately would cost thousands of
/// `malloc`s for a 500-key RangeResponse; the arena hands out slices of a few large blocks instead
/// (usually exactly one, when the caller passes a good `capacity`) and frees them all together
/// when it goes out of scope. Nothing it returns may outlive the arena.
struct Arena: ~Copyable {
    /// Alignment of every block; covers all C scalar and pointer types.
    private static let blockAlignment = 16

    /// Block currently being carved up, and where the next slice starts.
    private var block: UnsafeMutableRawPointer
    private var used: Int
    private var blockSize: Int
    /// Full earlier blocks, freed in `deinit`. Stays empty (no allocation) in the common case.
    private var retired: [UnsafeMutableRawPointer] = []

    /// - Parameter capacity: expected total bytes; a close estimate means a single block.
    init(capacity: Int = 1024) {
        blockSize = max(capacity, 256)
        block = .allocate(byteCount: blockSize, alignment: Self.blockAlignment)
        used = 0
    }

    /// Blocks allocated so far; 1 means the capacity estimate was good enough.
    var blockCount: Int { retired.count + 1 }

    deinit {
        block.deallocate()
        for old in retired { old.deallocate() }
    }

    /// Uninitialised, correctly aligned room for `count` values of `T`.
    mutating func allocate<T>(_: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let alignment = MemoryLayout<T>.alignment
        let bytes = MemoryLayout<T>.stride * max(count, 1)
        var start = (used + alignment - 1) & ~(alignment - 1)
        if start + bytes > blockSize {
            retired.append(block)
            blockSize = max(blockSize * 2, bytes + alignment)
            block = .allocate(byteCount: blockSize, alignment: Self.blockAlignment)
            start = 0
        }
        used = start + bytes
        return (block + start).bindMemory(to: T.self, capacity: max(count, 1))
    }

    /// One message struct, initialised by its generated `foo__init` (the `FOO__INIT` macros do
    /// not import into Swift).
    mutating func message<T>(_ initialize: (UnsafeMutablePointer<T>?) -> Void) -> UnsafeMutablePointer<T> {
        let pointer = allocate(T.self, count: 1)
        initialize(pointer)
        return pointer
    }

    /// `count` initialised message structs laid out contiguously, plus the `T **` array
    /// protobuf-c wants for a repeated field. `nil` for an empty field.
    mutating func messages<T>(
        _ count: Int, _ initialize: (UnsafeMutablePointer<T>?) -> Void
    ) -> (structs: UnsafeMutablePointer<T>, pointers: UnsafeMutablePointer<UnsafeMutablePointer<T>?>)? {
        guard count > 0 else { return nil }
        let structs = allocate(T.self, count: count)
        let pointers = allocate(UnsafeMutablePointer<T>?.self, count: count)
        for index in 0..<count {
            initialize(structs + index)
            (pointers + index).initialize(to: structs + index)
        }
        return (structs, pointers)
    }

    /// A copy of `bytes` as a proto3 `bytes` value; empty input needs no storage.
    mutating func binary(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        guard !bytes.isEmpty else { return ProtobufCBinaryData(len: 0, data: nil) }
        let storage = allocate(UInt8.self, count: bytes.count)
        bytes.withUnsafeBufferPointer { source in
            // Non-empty, so the base address exists.
            if let base = source.baseAddress { storage.initialize(from: base, count: source.count) }
        }
        return ProtobufCBinaryData(len: bytes.count, data: storage)
    }

    /// A NUL-terminated copy of `string` for a proto3 `string` field, or `nil` when empty
    /// (protobuf-c treats a NULL string as "" and skips it, exactly like the empty default).
    mutating func cString(_ string: String) -> UnsafeMutablePointer<CChar>? {
        guard !string.isEmpty else { return nil }
        var string = string
        return string.withUTF8 { utf8 in
            let storage = allocate(CChar.self, count: utf8.count + 1)
            utf8.withMemoryRebound(to: CChar.self) { source in
                if let base = source.baseAddress { storage.initialize(from: base, count: source.count) }
            }
            storage[utf8.count] = 0
            return storage
        }
    }

    /// A `char **` array for a `repeated string` field; `nil` when empty.
    mutating func cStrings(_ strings: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
        guard !strings.isEmpty else { return nil }
        let array = allocate(UnsafeMutablePointer<CChar>?.self, count: strings.count)
        for (index, string) in strings.enumerated() {
            // protobuf-c calls strlen on every element of a repeated string, so "" must be real.
            (array + index).initialize(to: cString(string) ?? emptyCString())
        }
        return array
    }

    private mutating func emptyCString() -> UnsafeMutablePointer<CChar> {
        let storage = allocate(CChar.self, count: 1)
        storage.initialize(to: 0)
        return storage
    }
}
