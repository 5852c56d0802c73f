public import KineSQL

/// PostgreSQL type OIDs used for binary parameters.
enum PostgresOID {
    static let unknown: UInt32 = 0
    static let bool: UInt32 = 16
    static let bytea: UInt32 = 17
    static let int8: UInt32 = 20
    static let text: UInt32 = 25
    static let byteaArray: UInt32 = 1001
    static let textArray: UInt32 = 1009
    static let int8Array: UInt32 = 1016
}

/// Binary wire format (the `send`/`recv` functions of each type) for the values kine exchanges.
enum PostgresBinary {
    /// The type OID and binary bytes of one parameter; `nil` bytes is SQL NULL.
    static func encode(_ value: SQLValue) -> (oid: UInt32, bytes: [UInt8]?) {
        switch value {
        case .null:
            return (PostgresOID.unknown, nil)
        case .int64(let v):
            var out: [UInt8] = []
            out.reserveCapacity(8)
            appendInt64(v, to: &out)
            return (PostgresOID.int8, out)
        case .bool(let v):
            return (PostgresOID.bool, [v ? 1 : 0])
        case .text(let v):
            return (PostgresOID.text, Array(v.utf8))
        case .bytes(let v):
            return (PostgresOID.bytea, v)
        case .int64Array(let v):
            return (
                PostgresOID.int8Array,
                encodeArray(
                    elementOID: PostgresOID.int8,
                    v.map { value in
                        var out: [UInt8] = []
                        appendInt64(value, to: &out)
                        return out
                    })
            )
        case .textArray(let v):
            return (PostgresOID.textArray, encodeArray(elementOID: PostgresOID.text, v.map { Array($0.utf8) }))
        case .bytesArray(let v):
            return (PostgresOID.byteaArray, encodeArray(elementOID: PostgresOID.bytea, v))
        }
    }

    /// A one-dimensional array: ndim, has-null flag, element OID, then (size, lower bound 1) and
    /// each element as a 4-byte length (-1 for NULL) followed by its bytes. An empty array has
    /// ndim 0 and no dimension header, as PostgreSQL itself sends it.
    static func encodeArray(elementOID: UInt32, _ elements: [[UInt8]?]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(20 + elements.reduce(0) { $0 + 4 + ($1?.count ?? 0) })
        let hasNull = elements.contains { $0 == nil }
        appendInt32(elements.isEmpty ? 0 : 1, to: &out)
        appendInt32(hasNull ? 1 : 0, to: &out)
        appendInt32(Int32(bitPattern: elementOID), to: &out)
        guard !elements.isEmpty else { return out }
        appendInt32(Int32(clamping: elements.count), to: &out)
        appendInt32(1, to: &out)
        for element in elements {
            if let element {
                appendInt32(Int32(clamping: element.count), to: &out)
                out.append(contentsOf: element)
            } else {
                appendInt32(-1, to: &out)
            }
        }
        return out
    }

    /// Decodes a one-dimensional binary array into its raw elements (`nil` = NULL element).
    /// Returns `nil` if the bytes are not a well-formed array of at most one dimension.
    static func decodeArray(_ bytes: [UInt8]) -> (elementOID: UInt32, elements: [[UInt8]?])? {
        var reader = ByteReader(bytes)
        guard let ndim = reader.int32(), reader.int32() != nil, let oid = reader.int32() else { return nil }
        if ndim == 0 { return reader.isAtEnd ? (UInt32(bitPattern: oid), []) : nil }
        guard ndim == 1, let count = reader.int32(), count >= 0, reader.int32() != nil else { return nil }
        var elements: [[UInt8]?] = []
        elements.reserveCapacity(Int(count))
        for _ in 0..<count {
            guard let length = reader.int32() else { return nil }
            if length < 0 {
                elements.append(nil)
            } else {
                guard let element = reader.bytes(Int(length)) else { return nil }
                elements.append(element)
            }
        }
        return reader.isAtEnd ? (UInt32(bitPattern: oid), elements) : nil
    }

    static func appendInt64(_ value: Int64, to out: inout [UInt8]) {
        let bits = UInt64(bitPattern: value)
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
    }

    static func appendInt32(_ value: Int32, to out: inout [UInt8]) {
        let bits = UInt32(bitPattern: value)
        for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: bits >> UInt32(shift))) }
    }
}

/// Reads big-endian integers and byte runs from a buffer, failing softly at the end.
struct ByteReader {
    private let bytes: [UInt8]
    private var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { index == bytes.count }

    mutating func int32() -> Int32? {
        guard bytes.count - index >= 4 else { return nil }
        var value: UInt32 = 0
        for i in 0..<4 { value = (value << 8) | UInt32(bytes[index + i]) }
        index += 4
        return Int32(bitPattern: value)
    }

    mutating func bytes(_ count: Int) -> [UInt8]? {
        guard count >= 0, bytes.count - index >= count else { return nil }
        defer { index += count }
        return Array(bytes[index..<(index + count)])
    }
}

extension SQLRow {
    /// An `int8[]` column (NULL column → empty; NULL elements → 0).
    public func int64Array(_ index: Int) -> [Int64] {
        guard let raw = cell(index), let array = PostgresBinary.decodeArray(raw) else { return [] }
        return array.elements.map { SQLRow(columns: [$0]).int64(0) }
    }

    /// A `text[]` column (NULL column → empty; NULL elements → "").
    public func textArray(_ index: Int) -> [String] {
        guard let raw = cell(index), let array = PostgresBinary.decodeArray(raw) else { return [] }
        return array.elements.map { String(decoding: $0 ?? [], as: UTF8.self) }
    }

    /// A `bytea[]` column (NULL column → empty), NULL elements kept as `nil`.
    public func bytesArray(_ index: Int) -> [[UInt8]?] {
        guard let raw = cell(index), let array = PostgresBinary.decodeArray(raw) else { return [] }
        return array.elements
    }
}
