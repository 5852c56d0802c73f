extension Duration {
    /// Whole milliseconds (truncated), for SQL, protobuf and libpq settings that count in ms.
    public var wholeMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}

extension Duration {
    /// Whole microseconds (truncated), for counters that sum durations.
    public var wholeMicroseconds: Int64 {
        components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000
    }
}
