/// `grpc-timeout` header values: at most 8 ASCII digits followed by one unit character
/// (`H` hours, `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds).
enum GRPCTimeout {
    /// Parses a `grpc-timeout` value into nanoseconds; `nil` if malformed.
    static func parse(_ value: String) -> Int64? {
        let bytes = value.utf8
        guard bytes.count >= 2, bytes.count <= 9, let unit = bytes.last else { return nil }
        var amount: Int64 = 0
        for byte in bytes.dropLast() {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            amount = amount * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        let multiplier: Int64
        switch unit {
        case UInt8(ascii: "H"): multiplier = 3_600_000_000_000
        case UInt8(ascii: "M"): multiplier = 60_000_000_000
        case UInt8(ascii: "S"): multiplier = 1_000_000_000
        case UInt8(ascii: "m"): multiplier = 1_000_000
        case UInt8(ascii: "u"): multiplier = 1_000
        case UInt8(ascii: "n"): multiplier = 1
        default: return nil
        }
        // 99_999_999 hours overflows Int64 nanoseconds; clamp instead of trapping.
        let (product, overflow) = amount.multipliedReportingOverflow(by: multiplier)
        return overflow ? Int64.max : product
    }

    /// Encodes a timeout the way grpc-go does: the finest unit whose value fits in 8 digits,
    /// rounding up.
    static func encode(nanoseconds: Int64) -> String {
        let value = max(nanoseconds, 0)
        let units: [(Int64, Character)] = [
            (1, "n"), (1_000, "u"), (1_000_000, "m"), (1_000_000_000, "S"), (60_000_000_000, "M"),
            (3_600_000_000_000, "H"),
        ]
        for (size, unit) in units {
            let amount = value / size + (value % size == 0 ? 0 : 1)
            if amount <= 99_999_999 { return "\(amount)\(unit)" }
        }
        return "99999999H"
    }

    static func encode(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let (secNanos, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return "99999999H" }
        let nanos = secNanos.addingReportingOverflow(attoseconds / 1_000_000_000)
        return encode(nanoseconds: nanos.overflow ? Int64.max : nanos.partialValue)
    }
}
