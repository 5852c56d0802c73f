/// Reads HTTP/1.1 requests off a connection's bytes: the head, then a body framed by
/// `Content-Length` or chunked transfer coding. A state machine fed bytes, returning events; it
/// knows nothing of sockets, so it is tested byte by byte.
///
/// One request at a time: after `.end`, bytes that arrive (a pipelined request) are held until
/// `nextRequest()` says the response went out.
struct HTTP1RequestParser {
    enum Event: Equatable {
        case head(HTTP1RequestHead)
        case body([UInt8])
        case end
        /// The request cannot be read; answer `status` (if nothing was sent yet) and close.
        case failure(status: Int, message: String)
    }

    private enum State: Equatable {
        case head
        case fixedBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailer
        case waitingForResponse
        case failed
    }

    static let maxHeadSize = 16 * 1024
    static let maxLineSize = 4 * 1024
    /// Bytes of a pipelined next request held while the current one is answered.
    static let maxHeldBytes = 64 * 1024

    private var state = State.head
    private var buffer: [UInt8] = []
    private var offset = 0

    var isReadingHead: Bool { state == .head }
    var isWaitingForResponse: Bool { state == .waitingForResponse }

    mutating func feed(_ bytes: some Collection<UInt8>) -> [Event] {
        buffer.append(contentsOf: bytes)
        if state == .waitingForResponse {
            return buffer.count - offset > Self.maxHeldBytes ? fail(400, "too many pipelined bytes") : []
        }
        return process()
    }

    /// The previous response is complete: read the next request from what is held.
    mutating func nextRequest() -> [Event] {
        guard state == .waitingForResponse else { return [] }
        state = .head
        return process()
    }

    private mutating func process() -> [Event] {
        var events: [Event] = []
        loop: while true {
            switch state {
            case .head:
                guard let end = find([13, 10, 13, 10]) else {
                    if buffer.count - offset > Self.maxHeadSize { events += fail(431, "request header too large") }
                    break loop
                }
                let headBytes = Array(buffer[offset..<end])
                offset = end + 4
                switch HTTP1RequestHead.parse(headBytes) {
                case .failure(let failure):
                    events += fail(failure.status, failure.message)
                    break loop
                case .success(let head):
                    events.append(.head(head))
                    switch head.bodyFraming {
                    case .none:
                        events.append(.end)
                        state = .waitingForResponse
                    case .length(let length):
                        state = .fixedBody(remaining: length)
                    case .chunked:
                        state = .chunkSize
                    }
                }
            case .fixedBody(let remaining):
                if remaining == 0 {
                    events.append(.end)
                    state = .waitingForResponse
                    continue
                }
                let available = min(remaining, buffer.count - offset)
                guard available > 0 else { break loop }
                events.append(.body(Array(buffer[offset..<offset + available])))
                offset += available
                state = .fixedBody(remaining: remaining - available)
            case .chunkSize:
                guard let line = takeLine() else { break loop }
                let sizeText = line.prefix { $0 != UInt8(ascii: ";") }.filter { $0 != 0x20 && $0 != 0x09 }
                guard !sizeText.isEmpty, sizeText.count <= 15,
                    let size = Int(String(decoding: sizeText, as: UTF8.self), radix: 16)
                else {
                    events += fail(400, "malformed chunk size")
                    break loop
                }
                state = size == 0 ? .trailer : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let available = min(remaining, buffer.count - offset)
                guard available > 0 else { break loop }
                events.append(.body(Array(buffer[offset..<offset + available])))
                offset += available
                state = remaining == available ? .chunkDataEnd : .chunkData(remaining: remaining - available)
            case .chunkDataEnd:
                guard buffer.count - offset >= 2 else { break loop }
                guard buffer[offset] == 13, buffer[offset + 1] == 10 else {
                    events += fail(400, "malformed chunk")
                    break loop
                }
                offset += 2
                state = .chunkSize
            case .trailer:
                guard let line = takeLine() else { break loop }
                if line.isEmpty {
                    events.append(.end)
                    state = .waitingForResponse
                }
            case .waitingForResponse, .failed:
                break loop
            }
            if state != .failed, lineTooLong() {
                events += fail(400, "line too long")
                break loop
            }
        }
        compact()
        return events
    }

    /// A chunk-size or trailer line that has grown past any sane length without ending.
    private func lineTooLong() -> Bool {
        switch state {
        case .chunkSize, .trailer: return buffer.count - offset > Self.maxLineSize && find([13, 10]) == nil
        default: return false
        }
    }

    private mutating func fail(_ status: Int, _ message: String) -> [Event] {
        state = .failed
        buffer = []
        offset = 0
        return [.failure(status: status, message: message)]
    }

    private mutating func takeLine() -> ArraySlice<UInt8>? {
        guard let end = find([13, 10]) else { return nil }
        let line = buffer[offset..<end]
        offset = end + 2
        return line
    }

    private func find(_ pattern: [UInt8]) -> Int? {
        guard buffer.count - offset >= pattern.count else { return nil }
        var index = offset
        while index + pattern.count <= buffer.count {
            if buffer[index] == pattern[0], buffer[index..<index + pattern.count].elementsEqual(pattern) { return index }
            index += 1
        }
        return nil
    }

    private mutating func compact() {
        if offset == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            offset = 0
        } else if offset > 4096 {
            buffer.removeFirst(offset)
            offset = 0
        }
    }
}
