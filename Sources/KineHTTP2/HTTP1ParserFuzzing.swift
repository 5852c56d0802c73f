/// For the fuzz targets (`Fuzz/`): the HTTP/1.1 request parser driven as a connection drives it,
/// with each response taken as sent as soon as its request ends, so what it reads can be compared
/// however the bytes are split into reads.
package enum HTTP1ParserFuzzing {
    /// The events for `bytes` read in pieces of `readSizes` (the rest in one read), as text, with
    /// adjacent body pieces joined (how a body is cut into events depends on the reads, its bytes
    /// must not). Stops at the first failure, as a connection closes there.
    package static func events(of bytes: [UInt8], readSizes: [Int]) -> [String] {
        var parser = HTTP1RequestParser()
        var events: [HTTP1RequestParser.Event] = []
        var offset = 0
        var sizes = readSizes[...]
        while offset < bytes.count || offset == 0 {
            let size = sizes.popFirst() ?? bytes.count
            let end = min(bytes.count, offset + max(size, 0))
            events += parser.feed(bytes[offset..<end])
            offset = end
            while parser.isWaitingForResponse, !events.contains(where: isFailure) {
                let next = parser.nextRequest()
                if next.isEmpty { break }
                events += next
            }
            if events.contains(where: isFailure) || bytes.isEmpty { break }
        }
        return describe(events)
    }

    private static func isFailure(_ event: HTTP1RequestParser.Event) -> Bool {
        if case .failure = event { return true }
        return false
    }

    private static func describe(_ events: [HTTP1RequestParser.Event]) -> [String] {
        var out: [String] = []
        var body: [UInt8]?
        for event in events {
            if case .body(let bytes) = event {
                body = (body ?? []) + bytes
                continue
            }
            if let pending = body {
                out.append("body \(pending)")
                body = nil
            }
            switch event {
            case .head(let head): out.append("head \(head)")
            case .end: out.append("end")
            case .failure(let status, let message): out.append("failure \(status) \(message)")
            case .body: break
            }
            if isFailure(event) { break }
        }
        if let pending = body { out.append("body \(pending)") }
        return out
    }
}
