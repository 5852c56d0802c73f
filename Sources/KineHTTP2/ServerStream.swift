import NIOCore

/// Per-stream server state, confined to the connection's event loop.
final class ServerStream {
    enum Kind {
        case unary(@Sendable (_ request: [UInt8], _ context: GRPCCallContext) async throws(GRPCStatus) -> [UInt8])
        case bidirectional(
            @Sendable (_ requests: GRPCRequestStream, _ responses: GRPCResponseWriter, _ context: GRPCCallContext)
                async throws(GRPCStatus) -> Void
        )
    }

    let id: Int32

    // Request head.
    var method = ""
    var path = ""
    var authority = ""
    var contentType = ""
    var timeout = ""
    var encoding = ""
    var metadata = GRPCMetadata()

    // Request body.
    var deframer: GRPCMessageDeframer
    var kind: Kind?
    var unaryRequest: [UInt8]?
    var requestContinuation: AsyncStream<[UInt8]>.Continuation?
    var requestEnded = false

    // Handler and response.
    var task: Task<Void, Never>?
    var deadlineTimer: Scheduled<Void>?
    var deadline: ContinuousClock.Instant?
    var outbound: OutboundMessageBuffer?
    /// Response HEADERS submitted (normal or Trailers-Only).
    var responseStarted = false
    /// Final status decided; trailers submitted or queued behind the data.
    var finished = false
    /// When the call was dispatched to a known method (observed calls only), until its end was reported.
    var observedSince: ContinuousClock.Instant?
    var trailerStatus = GRPCStatus.ok

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
            case ":method": method = valueString
            case ":authority": authority = valueString
            default: break
            }
            return
        }
        let nameString = String(decoding: name, as: UTF8.self)
        switch nameString {
        case "content-type": contentType = valueString
        case "grpc-timeout": timeout = valueString
        case "grpc-encoding": encoding = valueString
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
