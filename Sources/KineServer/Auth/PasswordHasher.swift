import CCrypt
import KineCore

/// bcrypt, as etcd hashes passwords (`golang.org/x/crypto/bcrypt`), through libxcrypt. Hashes
/// read both ways: kine's `$2b$` ones verify in Go, etcd's `$2a$` ones verify here.
enum PasswordHasher {
    /// etcd's `--bcrypt-cost` default and bounds (bcrypt.DefaultCost, MinCost, MaxCost).
    static let defaultCost = 10
    static let costs = 4...31

    /// A new salted hash of `password`. CPU-bound (about 50 ms at cost 10): call it off the
    /// event loop (`offLoop`).
    static func hash(_ password: String, cost: Int) throws(EtcdError) -> Bytes {
        var setting = [CChar](repeating: 0, count: Int(CRYPT_GENSALT_OUTPUT_SIZE))
        guard crypt_gensalt_rn("$2b$", UInt(cost), nil, 0, &setting, Int32(setting.count)) != nil else {
            throw EtcdError(.internal, "kine: bcrypt salt generation failed (cost \(cost))")
        }
        guard let hashed = run(password, setting: setting) else { throw EtcdError(.internal, "kine: bcrypt failed") }
        return hashed
    }

    /// Whether `password` matches `hash` (compared in constant time).
    static func verify(_ password: String, hash: Bytes) -> Bool {
        guard !hash.isEmpty, let computed = run(password, setting: hash.map { CChar(bitPattern: $0) } + [0]),
            computed.count == hash.count
        else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(computed, hash) { difference |= a ^ b }
        return difference == 0
    }

    private static func run(_ password: String, setting: [CChar]) -> Bytes? {
        let data = UnsafeMutablePointer<crypt_data>.allocate(capacity: 1)
        defer {
            // The scratch area holds key material: cleared before it is freed.
            UnsafeMutableRawPointer(data).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<crypt_data>.size)
            data.deallocate()
        }
        UnsafeMutableRawPointer(data).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<crypt_data>.size)
        guard let result = crypt_rn(password, setting, data, Int32(MemoryLayout<crypt_data>.size)) else { return nil }
        let bytes = Array(String(cString: result).utf8)
        // libxcrypt marks failure with a hash starting with "*".
        return bytes.first == UInt8(ascii: "*") ? nil : bytes
    }
}
