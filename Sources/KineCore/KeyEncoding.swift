/// Maps etcd keys (arbitrary bytes) to the `name text COLLATE "C"` column of the kine table and back.
///
/// PostgreSQL text cannot hold NUL and must be valid UTF-8, but etcd keys may be anything
/// (`etcdctl check perf` writes varints and zero bytes). Keys that are already NUL-free UTF-8 are
/// stored byte-identical to Go kine's rows; only other keys are escaped:
/// - `0x00` → `0x01 0x01`, `0x01` → `0x01 0x02` (both sort below every printable byte, as they should);
/// - a byte `b ≥ 0x80` that is not part of a valid UTF-8 sequence, and every byte of a valid
///   character in the reserved block U+10FF00…U+10FFFF, → the character U+10FF00 + b
///   (sorts above all ASCII, as the raw byte does).
/// Order is preserved except between an escaped high byte and a valid non-ASCII character at the
/// same position (documented in docs/compatibility.md).
public enum KeyEncoding {
    private static let escape: UInt8 = 0x01
    private static let reservedBase: UInt32 = 0x10FF00

    /// The stored name for `key`.
    public static func encode(_ key: Bytes) -> Bytes {
        if isPlain(key) { return key }
        var out: Bytes = []
        out.reserveCapacity(key.count + 8)
        var index = 0
        while index < key.count {
            let byte = key[index]
            if byte == 0x00 || byte == 0x01 {
                out.append(escape)
                out.append(byte + 1)
                index += 1
            } else if byte < 0x80 {
                out.append(byte)
                index += 1
            } else if let length = validSequenceLength(key, at: index), !isReserved(key, at: index) {
                out.append(contentsOf: key[index..<index + length])
                index += length
            } else {
                appendReserved(byte, to: &out)
                index += 1
            }
        }
        return out
    }

    /// The etcd key for a stored name.
    public static func decode(_ name: Bytes) -> Bytes {
        guard name.contains(where: { $0 == escape || $0 == 0xF4 }) else { return name }
        var out: Bytes = []
        out.reserveCapacity(name.count)
        var index = 0
        while index < name.count {
            let byte = name[index]
            if byte == escape, index + 1 < name.count, name[index + 1] == 1 || name[index + 1] == 2 {
                out.append(name[index + 1] - 1)
                index += 2
            } else if byte == 0xF4, index + 3 < name.count, name[index + 1] == 0x8F,
                (0xBC...0xBF).contains(name[index + 2])
            {
                let scalar = UInt32(name[index + 2] & 0x3F) << 6 | UInt32(name[index + 3] & 0x3F)
                out.append(UInt8(truncatingIfNeeded: scalar))
                index += 4
            } else {
                out.append(byte)
                index += 1
            }
        }
        return out
    }

    /// NUL-free, 0x01-free valid UTF-8 without reserved characters: stored as is.
    static func isPlain(_ key: Bytes) -> Bool {
        var index = 0
        while index < key.count {
            let byte = key[index]
            if byte <= 0x01 { return false }
            if byte < 0x80 {
                index += 1
                continue
            }
            guard let length = validSequenceLength(key, at: index), !isReserved(key, at: index) else { return false }
            index += length
        }
        return true
    }

    private static func appendReserved(_ byte: UInt8, to out: inout Bytes) {
        // U+10FF00 + byte, UTF-8: F4 8F (0x80 | scalar>>6 & 0x3F) (0x80 | scalar & 0x3F).
        let scalar = reservedBase + UInt32(byte)
        out.append(0xF4)
        out.append(0x8F)
        out.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (scalar & 0x3F)))
    }

    /// A valid character of the reserved block starts F4 8F BC..BF.
    private static func isReserved(_ key: Bytes, at index: Int) -> Bool {
        key[index] == 0xF4 && index + 2 < key.count && key[index + 1] == 0x8F && key[index + 2] >= 0xBC
    }

    /// Length of the well-formed UTF-8 sequence starting at `index` (lead byte ≥ 0x80), or nil.
    static func validSequenceLength(_ bytes: Bytes, at index: Int) -> Int? {
        let lead = bytes[index]
        let length: Int
        var lower: UInt8 = 0x80
        var upper: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0:
            length = 3
            lower = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED:
            length = 3
            upper = 0x9F
        case 0xF0:
            length = 4
            lower = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4:
            length = 4
            upper = 0x8F
        default: return nil
        }
        guard index + length <= bytes.count else { return nil }
        let second = bytes[index + 1]
        guard second >= lower && second <= upper else { return nil }
        for offset in 2..<max(2, length) where !(0x80...0xBF).contains(bytes[index + offset]) {
            return nil
        }
        return length
    }
}
