/// Reassembles gRPC Length-Prefixed-Messages (1 byte compressed flag, 4 bytes big-endian length,
/// payload) from arbitrary chunks of DATA payload. Messages may span chunks; chunks may hold many.
package struct GRPCMessageDeframer {
    package enum Failure: Error, Equatable {
        /// The compressed flag was set; we support no compression.
        case compressedMessage
        /// The announced message length exceeds the limit.
        case messageTooLarge(length: Int, limit: Int)
        /// The flag byte was neither 0 nor 1.
        case invalidFlag(UInt8)
    }

    package let maxMessageSize: Int
    private var header: (UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0)
    private var headerCount = 0
    /// The message being assembled, when the header has been read.
    private var message: [UInt8] = []
    private var expected = -1
    private(set) var failed = false

    package init(maxMessageSize: Int) {
        self.maxMessageSize = maxMessageSize
    }

    /// True when no partial message (or header) is pending: END_STREAM here is clean.
    package var isIdle: Bool { headerCount == 0 && expected < 0 }

    /// Feeds bytes; calls `onMessage` for each complete message, in order.
    package mutating func process(
        _ bytes: UnsafeRawBufferPointer,
        _ onMessage: ([UInt8]) -> Void
    ) throws(Failure) {
        guard !failed else { return }
        var offset = 0
        let count = bytes.count
        while offset < count {
            if expected < 0 {
                if headerCount == 0, count - offset >= 5 {
                    // Fast path: the whole header is in this chunk.
                    let length =
                        Int(bytes[offset + 1]) << 24 | Int(bytes[offset + 2]) << 16
                        | Int(bytes[offset + 3]) << 8 | Int(bytes[offset + 4])
                    try startMessage(flag: bytes[offset], length: length)
                    offset += 5
                } else {
                    addHeaderByte(bytes[offset])
                    offset += 1
                    guard headerCount == 5 else { continue }
                    headerCount = 0
                    let length = Int(header.1) << 24 | Int(header.2) << 16 | Int(header.3) << 8 | Int(header.4)
                    try startMessage(flag: header.0, length: length)
                }
                if expected == 0 {
                    onMessage([])
                    expected = -1
                    continue
                }
            }
            let need = expected - message.count
            let available = count - offset
            if message.isEmpty, available >= need {
                // Whole message contiguous in this chunk: one copy.
                onMessage(Array(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + need])))
                offset += need
                expected = -1
                continue
            }
            let take = min(need, available)
            if message.isEmpty { message.reserveCapacity(expected) }
            message.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + take]))
            offset += take
            if message.count == expected {
                onMessage(message)
                message = []
                expected = -1
            }
        }
    }

    /// Convenience for tests and byte arrays.
    package mutating func process(_ bytes: [UInt8], _ onMessage: ([UInt8]) -> Void) throws(Failure) {
        var result: Result<Void, Failure> = .success(())
        bytes.withUnsafeBytes { raw in
            do throws(Failure) {
                try self.process(raw, onMessage)
            } catch {
                result = .failure(error)
            }
        }
        try result.get()
    }

    private mutating func addHeaderByte(_ byte: UInt8) {
        switch headerCount {
        case 0: header.0 = byte
        case 1: header.1 = byte
        case 2: header.2 = byte
        case 3: header.3 = byte
        default: header.4 = byte
        }
        headerCount += 1
    }

    private mutating func startMessage(flag: UInt8, length: Int) throws(Failure) {
        if flag == 1 {
            failed = true
            throw .compressedMessage
        }
        if flag != 0 {
            failed = true
            throw .invalidFlag(flag)
        }
        if length > maxMessageSize {
            failed = true
            throw .messageTooLarge(length: length, limit: maxMessageSize)
        }
        expected = length
    }
}

enum GRPCMessageFramer {
    /// Writes the 5-byte prefix for an uncompressed message of `length` bytes.
    @inline(__always)
    static func prefix(length: Int) -> (UInt8, UInt8, UInt8, UInt8, UInt8) {
        let len = UInt32(truncatingIfNeeded: length)
        return (
            0, UInt8(len >> 24), UInt8(truncatingIfNeeded: len >> 16), UInt8(truncatingIfNeeded: len >> 8), UInt8(truncatingIfNeeded: len)
        )
    }

    static func frame(_ message: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.count + 5)
        let p = prefix(length: message.count)
        out.append(p.0)
        out.append(p.1)
        out.append(p.2)
        out.append(p.3)
        out.append(p.4)
        out.append(contentsOf: message)
        return out
    }
}
