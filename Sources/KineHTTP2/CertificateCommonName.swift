/// The subject common name of an X.509 certificate, read from its DER encoding: what etcd uses
/// as the user name of a client that authenticates with its certificate (Go's
/// `Subject.CommonName`, the last CN attribute of the subject).
enum CertificateCommonName {
    /// nil when the certificate has no subject CN or is not DER as expected.
    static func of(der: [UInt8]) -> String? {
        var reader = DERReader(der[...])
        guard let certificate = reader.next(tag: 0x30) else { return nil }
        var certificateFields = DERReader(certificate)
        guard let tbs = certificateFields.next(tag: 0x30) else { return nil }
        var fields = DERReader(tbs)
        if fields.peekTag == 0xA0 { _ = fields.next(tag: 0xA0) }  // version
        // serialNumber, signature, issuer, validity, then subject.
        guard fields.next(tag: 0x02) != nil, fields.next(tag: 0x30) != nil, fields.next(tag: 0x30) != nil,
            fields.next(tag: 0x30) != nil, let subject = fields.next(tag: 0x30)
        else { return nil }
        var commonName: String?
        var names = DERReader(subject)
        while let set = names.next(tag: 0x31) {
            var attributes = DERReader(set)
            while let attribute = attributes.next(tag: 0x30) {
                var parts = DERReader(attribute)
                guard let oid = parts.next(tag: 0x06), Array(oid) == [0x55, 0x04, 0x03], let value = parts.nextAny() else { continue }
                commonName = String(decoding: value, as: UTF8.self)
            }
        }
        return commonName
    }

    /// Walks DER TLVs (definite lengths only, as DER requires).
    struct DERReader {
        var bytes: ArraySlice<UInt8>

        init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

        var peekTag: UInt8? { bytes.first }

        /// The contents of the next element if it has `tag`.
        mutating func next(tag: UInt8) -> ArraySlice<UInt8>? {
            guard bytes.first == tag else { return nil }
            return nextAny()
        }

        mutating func nextAny() -> ArraySlice<UInt8>? {
            var index = bytes.startIndex
            guard index < bytes.endIndex else { return nil }
            index += 1
            guard index < bytes.endIndex else { return nil }
            var length = Int(bytes[index])
            index += 1
            if length & 0x80 != 0 {
                let count = length & 0x7F
                guard count > 0, count <= 4, bytes.endIndex - index >= count else { return nil }
                length = 0
                for _ in 0..<count {
                    length = length << 8 | Int(bytes[index])
                    index += 1
                }
            }
            guard length <= bytes.endIndex - index else { return nil }
            let contents = bytes[index..<index + length]
            bytes = bytes[(index + length)...]
            return contents
        }
    }
}
