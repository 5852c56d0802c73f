import KineCore

/// What `NOTIFY kine` says after a commit: the revision, and the committed events when they fit,
/// so that another kine process (an HA follower, another K3s server on the same database) can
/// publish them to its watchers and its read cache without reading the table.
///
/// The payload is text, as NOTIFY requires: `<revision>` alone, or `<revision> <hex>` where the
/// hex is the events' rows (`encodeRows`). PostgreSQL refuses payloads of 8000 bytes or more, so
/// a bigger commit says only its revision and the receivers read the table as before. A receiver
/// uses the events only when they directly follow what it has published; anything else (a gap,
/// a payload it cannot read) makes it read the table. Older kine processes read any payload that
/// is not a bare number as "something happened" and read the table, so both can share a database.
struct CommitNoticePayload: Sendable, Equatable {
    /// One committed row as a watch event, without its previous value (the receiver has it).
    struct Row: Sendable, Equatable {
        var id: Int64
        var type: Event.EventType
        var kv: KeyValue
    }

    var revision: Int64
    /// nil: the payload carried the revision only.
    var rows: [Row]?

    init(revision: Int64, rows: [Row]?) {
        self.revision = revision
        self.rows = rows
    }

    /// PostgreSQL's limit is "shorter than 8000 bytes".
    static let maxBytes = 7999

    /// The payload for a commit through `revision` that wrote `rows` (in id order): with the
    /// events when they fit, else the revision alone.
    static func text(revision: Int64, rows: [PendingRow]) -> String {
        let plain = String(revision)
        guard !rows.isEmpty else { return plain }
        // Each byte becomes two hex digits: stop early when the rows alone would not fit.
        let budget = (maxBytes - plain.utf8.count - 1) / 2
        guard let bytes = encodeRows(rows, budget: budget) else { return plain }
        var text = Array(plain.utf8)
        text.reserveCapacity(text.count + 1 + bytes.count * 2)
        text.append(UInt8(ascii: " "))
        for byte in bytes {
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Reads a payload; nil when it is not a commit's (a hello, or something unknown).
    init?(parsing payload: String) {
        let utf8 = Array(payload.utf8)
        let space = utf8.firstIndex(of: UInt8(ascii: " ")) ?? utf8.count
        guard let revision = Int64(String(decoding: utf8[..<space], as: UTF8.self)) else { return nil }
        self.revision = revision
        guard space < utf8.count else {
            rows = nil
            return
        }
        // A commit's payload whose rows cannot be read still names its revision: the receiver
        // then reads the table.
        rows = Self.decodeHex(utf8[(space + 1)...]).flatMap(Self.decodeRows)
    }

    // MARK: - Rows: for each, id, event type, key, and for a put create revision, version,
    // lease and value; numbers as unsigned LEB128 of their bit pattern, lengths before bytes.

    static func encodeRows(_ rows: [PendingRow], budget: Int) -> [UInt8]? {
        var out: [UInt8] = []
        for row in rows {
            let event = row.event
            appendNumber(row.id, to: &out)
            appendNumber(row.revision, to: &out)
            out.append(event.type == .put ? 0 : 1)
            appendNumber(Int64(event.kv.key.count), to: &out)
            out.append(contentsOf: event.kv.key)
            if event.type == .put {
                appendNumber(event.kv.createRevision, to: &out)
                appendNumber(event.kv.version, to: &out)
                appendNumber(event.kv.lease, to: &out)
                appendNumber(Int64(event.kv.value.count), to: &out)
                out.append(contentsOf: event.kv.value)
            }
            if out.count > budget { return nil }
        }
        return out
    }

    static func decodeRows(_ bytes: [UInt8]) -> [Row]? {
        var reader = Reader(bytes: bytes)
        var rows: [Row] = []
        while !reader.atEnd {
            guard let id = reader.number(), let revision = reader.number(), let type = reader.byte(),
                let key = reader.lengthPrefixed()
            else { return nil }
            switch type {
            case 0:
                guard let created = reader.number(), let version = reader.number(), let lease = reader.number(),
                    let value = reader.lengthPrefixed()
                else { return nil }
                let kv = KeyValue(
                    key: key, createRevision: created, modRevision: revision, version: version, value: value, lease: lease)
                rows.append(Row(id: id, type: .put, kv: kv))
            case 1:
                rows.append(Row(id: id, type: .delete, kv: KeyValue(key: key, modRevision: revision)))
            default:
                return nil
            }
        }
        return rows.isEmpty ? nil : rows
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func appendNumber(_ value: Int64, to out: inout [UInt8]) {
        var rest = UInt64(bitPattern: value)
        while rest >= 0x80 {
            out.append(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        }
        out.append(UInt8(rest))
    }

    private static func decodeHex(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        guard text.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(text.count / 2)
        var index = text.startIndex
        while index < text.endIndex {
            guard let high = hexValue(text[index]), let low = hexValue(text[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    /// Bounds-checked reading of `encodeRows`' bytes.
    private struct Reader {
        let bytes: [UInt8]
        var index = 0

        var atEnd: Bool { index == bytes.count }

        mutating func byte() -> UInt8? {
            guard index < bytes.count else { return nil }
            defer { index += 1 }
            return bytes[index]
        }

        mutating func number() -> Int64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while let byte = byte() {
                guard shift < 64 else { return nil }
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return Int64(bitPattern: value) }
                shift += 7
            }
            return nil
        }

        mutating func lengthPrefixed() -> [UInt8]? {
            guard let count = number(), count >= 0, count <= bytes.count - index else { return nil }
            defer { index += Int(count) }
            return Array(bytes[index..<index + Int(count)])
        }
    }
}
