import KineCore
import KineHTTP2
import KineProto

/// etcd's HTTP/JSON gateway on the client port: a POST to `/v3/...` (or `/v3beta/...`) carries a
/// request in etcd's JSON mapping; it becomes the protobuf bytes a gRPC client would send and
/// goes to the same method, so every answer and error is the gRPC one, rendered back as etcd's
/// gateway renders it.
struct JSONGateway: Sendable {
    let router: EtcdRouter
    /// The gRPC transport's limit, applied to the converted request as the transport would.
    let maxReceiveMessageSize: Int

    /// JSON for a message at the limit is about 4/3 of it (base64), plus field names.
    var bodyLimit: Int { maxReceiveMessageSize * 2 + 64 * 1024 }

    static let metadataHeaders = [HTTP1Header(name: "Grpc-Metadata-Content-Type", value: "application/grpc")]

    static func isGatewayPath(_ path: String) -> Bool { path.hasPrefix("/v3/") || path.hasPrefix("/v3beta/") }

    func serve(_ request: HTTP1Request, _ writer: HTTP1ResponseWriter) async {
        var path = request.head.path
        if path.hasPrefix("/v3beta/") { path = "/v3/" + path.dropFirst("/v3beta/".count) }
        guard let route = GatewayRoute.table[path] else {
            return await writer.respond(Self.plain(404, "Not Found\n"))
        }
        guard request.head.method == "POST" else {
            return await writer.respond(Self.plain(405, "Method Not Allowed\n"))
        }
        var metadata = GRPCMetadata()
        // etcd's gateway passes `Authorization` on as metadata, and `Grpc-Metadata-<name>` headers as `<name>`.
        if let token = request.head.header("authorization") { metadata.append(name: "authorization", value: token) }
        if let token = request.head.header("grpc-metadata-token") { metadata.append(name: "token", value: token) }
        let context = GRPCCallContext(path: route.grpcPath, metadata: metadata, remoteAddress: request.remoteAddress)
        switch (route.shape, router.method(for: route.grpcPath)) {
        case (.unary, .unary(let call)?):
            await unary(route, call, request.body, context, writer)
        case (.serverStream, .bidirectional(let call)?):
            await serverStream(route, call, request.body, context, writer)
        case (.bidirectional, .bidirectional(let call)?):
            await bidirectional(route, call, request.body, context, writer)
        case (_, nil):
            await writer.respond(GatewayErrors.unary(GRPCStatus(.unimplemented, router.unknownMethodMessage(route.grpcPath))))
        default:
            await writer.respond(GatewayErrors.unary(GRPCStatus(.internal, "gateway route \(path) does not match its method")))
        }
    }

    private func unary(
        _ route: GatewayRoute, _ call: @Sendable ([UInt8], GRPCCallContext) async throws(GRPCStatus) -> [UInt8],
        _ body: HTTP1RequestBody, _ context: GRPCCallContext, _ writer: HTTP1ResponseWriter
    ) async {
        let request: [UInt8]
        switch await wholeRequest(body, route) {
        case .success(let bytes): request = bytes
        case .failure(let status): return await writer.respond(GatewayErrors.unary(status))
        }
        let reply: [UInt8]
        do {
            reply = try await call(request, context)
        } catch {
            return await writer.respond(withMetadata(GatewayErrors.unary(error)))
        }
        do {
            let json = try ProtoJSON.json(fromWire: reply, as: route.response)
            await writer.respond(HTTP1Response(status: 200, contentType: "application/json", headers: Self.metadataHeaders, body: json))
        } catch {
            await writer.respond(GatewayErrors.unary(GRPCStatus(.internal, error.description)))
        }
    }

    /// Snapshot: one request read as a unary call reads it, then a stream of answers.
    private func serverStream(
        _ route: GatewayRoute, _ call: @Sendable (GRPCRequestStream, GRPCResponseWriter, GRPCCallContext) async throws(GRPCStatus) -> Void,
        _ body: HTTP1RequestBody, _ context: GRPCCallContext, _ writer: HTTP1ResponseWriter
    ) async {
        let request: [UInt8]
        switch await wholeRequest(body, route) {
        case .success(let bytes): request = bytes
        case .failure(let status): return await writer.respond(GatewayErrors.unary(status))
        }
        let (requests, continuation) = AsyncStream<[UInt8]>.makeStream()
        continuation.yield(request)
        continuation.finish()
        await run(route, call, requests, context, writer)
    }

    /// Watch and LeaseKeepAlive: the body is a sequence of JSON requests, forwarded as they arrive.
    /// As in etcd, a malformed first request fails the call (500, code 2); a malformed later one
    /// stops the forwarding and the answers go on; the end of the body half-closes the call.
    private func bidirectional(
        _ route: GatewayRoute, _ call: @Sendable (GRPCRequestStream, GRPCResponseWriter, GRPCCallContext) async throws(GRPCStatus) -> Void,
        _ body: HTTP1RequestBody, _ context: GRPCCallContext, _ writer: HTTP1ResponseWriter
    ) async {
        var reader = GatewayBodyReader(body: body, limit: bodyLimit)
        let (requests, continuation) = AsyncStream<[UInt8]>.makeStream()
        switch await reader.next() {
        case .end:
            continuation.finish()
        case .failure(let message):
            return await writer.respond(GatewayErrors.unary(GRPCStatus(.unknown, message)))
        case .value(let document):
            switch convert(document, route, failure: .unknown) {
            case .failure(let status): return await writer.respond(GatewayErrors.unary(status))
            case .success(let request):
                guard request.count <= maxReceiveMessageSize else {
                    return await GatewayStreamOutput(writer: writer, response: route.response)
                        .fail(GatewayErrors.tooLarge(request.count, limit: maxReceiveMessageSize))
                }
                continuation.yield(request)
            }
        }
        let forwarder = Task { [reader, maxReceiveMessageSize] in
            var reader = reader
            defer { continuation.finish() }
            while case .value(let document) = await reader.next() {
                guard case .success(let request) = convert(document, route, failure: .unknown),
                    request.count <= maxReceiveMessageSize
                else { return }
                continuation.yield(request)
            }
        }
        await run(route, call, requests, context, writer)
        forwarder.cancel()
    }

    private func run(
        _ route: GatewayRoute, _ call: @Sendable (GRPCRequestStream, GRPCResponseWriter, GRPCCallContext) async throws(GRPCStatus) -> Void,
        _ requests: AsyncStream<[UInt8]>, _ context: GRPCCallContext, _ writer: HTTP1ResponseWriter
    ) async {
        let output = GatewayStreamOutput(writer: writer, response: route.response)
        let responses = GRPCResponseWriter { message in try await output.send(message) }
        do {
            try await call(GRPCRequestStream(requests), responses, context)
            await output.finish()
        } catch {
            await output.fail(error)
        }
    }

    /// A body holding one request (or none: an empty body is an empty request), as a unary call
    /// reads it: errors are INVALID_ARGUMENT, a converted request over the limit RESOURCE_EXHAUSTED.
    private func wholeRequest(_ body: HTTP1RequestBody, _ route: GatewayRoute) async -> Result<[UInt8], GRPCStatus> {
        guard let bytes = await body.collect(limit: bodyLimit) else {
            return .failure(GatewayErrors.tooLarge(bodyLimit + 1, limit: maxReceiveMessageSize))
        }
        var values = JSONValueStream(limit: Int.max)
        values.append(bytes)
        switch values.next(endOfBody: true) {
        case .value(let document):
            let converted = convert(document, route, failure: .invalidArgument)
            if case .success(let request) = converted, request.count > maxReceiveMessageSize {
                return .failure(GatewayErrors.tooLarge(request.count, limit: maxReceiveMessageSize))
            }
            return converted
        case .failure(let message):
            return .failure(GRPCStatus(.invalidArgument, message))
        case .endOfInput, .needMoreBytes:
            return .success([])
        }
    }

    private func convert(_ document: JSONDocument, _ route: GatewayRoute, failure code: GRPCStatusCode) -> Result<[UInt8], GRPCStatus> {
        do {
            return .success(try ProtoJSON.wire(from: document, as: route.request))
        } catch {
            return .failure(GRPCStatus(code, error.description))
        }
    }

    private func withMetadata(_ response: HTTP1Response) -> HTTP1Response {
        var response = response
        response.headers += Self.metadataHeaders
        return response
    }

    /// Go's `http.Error`: text/plain, nosniff.
    static func plain(_ status: Int, _ text: String) -> HTTP1Response {
        HTTP1Response(
            status: status, contentType: "text/plain; charset=utf-8",
            headers: [HTTP1Header(name: "X-Content-Type-Options", value: "nosniff")], body: Array(text.utf8))
    }
}

/// Reads successive JSON requests off a streamed body.
struct GatewayBodyReader {
    enum Next: Sendable {
        case value(JSONDocument)
        case end
        case failure(String)
    }

    private let body: HTTP1RequestBody
    private var iterator: AsyncStream<[UInt8]>.AsyncIterator?
    private var values: JSONValueStream
    private var bodyEnded = false

    init(body: HTTP1RequestBody, limit: Int) {
        self.body = body
        values = JSONValueStream(limit: limit)
    }

    mutating func next() async -> Next {
        while true {
            switch values.next(endOfBody: bodyEnded) {
            case .value(let document): return .value(document)
            case .endOfInput: return .end
            case .failure(let message): return .failure(message)
            case .needMoreBytes:
                if iterator == nil { iterator = body.makeAsyncIterator() }
                if let piece = await iterator?.next() {
                    values.append(piece)
                } else {
                    bodyEnded = true
                }
            }
        }
    }
}

/// The answers of a streamed call as etcd's gateway writes them: one `{"result":…}` line per
/// message, the head sent with the first; a failure before any message is a plain error answer
/// with its HTTP status, a failure after one a last `{"error":{…}}` chunk.
actor GatewayStreamOutput {
    private let writer: HTTP1ResponseWriter
    private let response: MessageSchema
    private var started = false

    init(writer: HTTP1ResponseWriter, response: MessageSchema) {
        self.writer = writer
        self.response = response
    }

    func send(_ message: [UInt8]) async throws {
        let json: [UInt8]
        do {
            json = try ProtoJSON.json(fromWire: message, as: response)
        } catch {
            throw GRPCStatus(.internal, error.description)
        }
        try await start()
        try await writer.writeChunk(Array(#"{"result":"#.utf8) + json + Array("}\n".utf8))
    }

    private func start() async throws(HTTP1ConnectionClosed) {
        guard !started else { return }
        started = true
        try await writer.startStream(status: 200, contentType: "application/json", headers: JSONGateway.metadataHeaders)
    }

    func finish() async {
        // try?: a client that went away cannot be answered; finishing only releases the writer.
        try? await start()
        await writer.finish()
    }

    func fail(_ status: GRPCStatus) async {
        let body = GatewayErrors.streamBody(status)
        if started {
            // try?: a client that went away cannot be told the error; finishing only releases the writer.
            try? await writer.writeChunk(body)
            await writer.finish()
        } else {
            started = true
            await writer.respond(
                HTTP1Response(
                    status: GatewayErrors.httpStatus(status.code), contentType: "application/json",
                    headers: JSONGateway.metadataHeaders, body: body))
        }
    }
}
