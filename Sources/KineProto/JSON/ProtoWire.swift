/// The protobuf wire format, just enough to walk a message field by field and to write one:
/// varints, fixed 32/64-bit values and length-delimited payloads.
enum ProtoWire {
    enum WireType: UInt8 {
        case varint = 0
        case fixed64 = 1
        case lengthDelimited = 2
        case fixed32 = 5
    }

    enum Value {
        case varint(UInt64)
        case fixed64(UInt64)
        case fixed32(UInt32)
        case bytes(ArraySlice<UInt8>)
    }

    struct Malformed: Error {}

    /// Reads every field of `bytes` in wire order.
    static func fields(_ bytes: ArraySlice<UInt8>) throws(Malformed) -> [(number: UInt32, value: Value)] {
        var result: [(number: UInt32, value: Value)] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let tag = try readVarint(bytes, &index)
            let number = tag >> 3
            guard number > 0, number <= UInt64(UInt32.max >> 3) else { throw Malformed() }
            switch WireType(rawValue: UInt8(tag & 7)) {
            case .varint:
                result.append((UInt32(number), .varint(try readVarint(bytes, &index))))
            case .fixed64:
                guard bytes.endIndex - index >= 8 else { throw Malformed() }
                var value: UInt64 = 0
                for offset in 0..<8 { value |= UInt64(bytes[index + offset]) << (8 * UInt64(offset)) }
                index += 8
                result.append((UInt32(number), .fixed64(value)))
            case .fixed32:
                guard bytes.endIndex - index >= 4 else { throw Malformed() }
                var value: UInt32 = 0
                for offset in 0..<4 { value |= UInt32(bytes[index + offset]) << (8 * UInt32(offset)) }
                index += 4
                result.append((UInt32(number), .fixed32(value)))
            case .lengthDelimited:
                let length = try readVarint(bytes, &index)
                guard length <= UInt64(bytes.endIndex - index) else { throw Malformed() }
                let end = index + Int(length)
                result.append((UInt32(number), .bytes(bytes[index..<end])))
                index = end
            case nil:
                throw Malformed()
            }
        }
        return result
    }

    static func readVarint(_ bytes: ArraySlice<UInt8>, _ index: inout Int) throws(Malformed) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard index < bytes.endIndex, shift < 64 else { throw Malformed() }
            let byte = bytes[index]
            index += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }

    static func appendVarint(_ value: UInt64, to output: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            output.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        output.append(UInt8(value))
    }

    static func appendTag(_ number: UInt32, _ type: WireType, to output: inout [UInt8]) {
        appendVarint(UInt64(number) << 3 | UInt64(type.rawValue), to: &output)
    }

    static func appendLengthDelimited(_ number: UInt32, _ payload: [UInt8], to output: inout [UInt8]) {
        appendTag(number, .lengthDelimited, to: &output)
        appendVarint(UInt64(payload.count), to: &output)
        output.append(contentsOf: payload)
    }

    static func appendFixed(_ value: UInt64, bytes count: Int, to output: inout [UInt8]) {
        for offset in 0..<count { output.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(offset)))) }
    }

    static func zigZag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }

    static func unZigZag(_ value: UInt64) -> Int64 { Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1) }
}
