import NIOCore

/// One server stream's parts, confined to the connection's event loop: the request head, the
/// deframer, the handler and what it runs with. Where the call stands is `machine`'s alone.
final class ServerStream {
    let id: Int32
    var machine = ServerCallMachine()

    // Request head.
    var head = ServerCallMachine.RequestHead()
    var path = ""
    var authority = ""
    var metadata = GRPCMetadata()

    // Request body.
    var deframer: GRPCMessageDeframer
    /// The router's method for the path (nil until routed, or when there is none).
    var handler: GRPCMethod?
    var requestContinuation: AsyncStream<[UInt8]>.Continuation?

    // Handler and response.
    var task: Task<Void, Never>?
    var deadlineTimer: Scheduled<Void>?
    var deadline: ContinuousClock.Instant?
    var outbound: OutboundMessageBuffer?
    /// When the observer heard the call's start, and whether it streams (until its end is reported).
    var observation: (since: ContinuousClock.Instant, streaming: Bool)?

    init(id: Int32, maxMessageSize: Int) {
        self.id = id
        self.deframer = GRPCMessageDeframer(maxMessageSize: maxMessageSize)
    }

    /// Records one request header.
    func addHeader(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) {
        guard let first = name.first else { return }
        let valueString = String(decoding: value, as: UTF8.self)
        if first == UInt8(ascii: ":") {
            switch String(decoding: name, as: UTF8.self) {
            case ":path": path = valueString
            case ":method": head.method = valueString
            case ":authority": authority = valueString
            default: break
            }
            return
        }
        let nameString = String(decoding: name, as: UTF8.self)
        switch nameString {
        case "content-type": head.contentType = valueString
        case "grpc-timeout": head.timeout = valueString
        case "grpc-encoding": head.encoding = valueString
        case "te", "grpc-accept-encoding": break
        default: metadata.entries.append(GRPCMetadata.Entry(name: nameString, value: valueString))
        }
    }
}

enum GRPCHeaders {
    static let responseHeaders = HeaderBlock([(":status", "200"), ("content-type", "application/grpc")])
    static let okTrailers = HeaderBlock([("grpc-status", "0")])

    static func trailers(_ status: GRPCStatus) -> HeaderBlock {
        if status.code == 0, status.message.isEmpty { return okTrailers }
        var block = HeaderBlock()
        block.append("grpc-status", String(status.code))
        if !status.message.isEmpty { block.append("grpc-message", GRPCMessageEncoding.encode(status.message)) }
        return block
    }

    static func trailersOnly(_ status: GRPCStatus, httpStatus: Int = 200) -> HeaderBlock {
        var block = HeaderBlock()
        block.append(":status", String(httpStatus))
        block.append("content-type", "application/grpc")
        block.append("grpc-status", String(status.code))
        if !status.message.isEmpty { block.append("grpc-message", GRPCMessageEncoding.encode(status.message)) }
        return block
    }
}
