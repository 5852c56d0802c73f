import KineCore

/// nghttp2's callbacks for the server session: each becomes an event of its stream's machine.
extension ServerConnectionHandler {
    func h2BeginHeaders(streamID: Int32, isTrailers: Bool) {
        guard !isTrailers, streams[streamID] == nil else { return }
        streams[streamID] = ServerStream(id: streamID, maxMessageSize: configuration.maxReceiveMessageSize)
    }

    func h2Header(
        streamID: Int32, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>, isTrailers: Bool
    ) -> Bool {
        guard !isTrailers, let stream = streams[streamID] else { return true }
        stream.addHeader(name: name, value: value)
        return true
    }

    func h2HeadersEnd(streamID: Int32, isTrailers: Bool, endStream: Bool) {
        guard let stream = streams[streamID] else { return }
        if !isTrailers {
            perform(stream.machine.headersReceived(stream.head, route: route(stream), draining: draining), on: stream)
        }
        if endStream { perform(stream.machine.requestEnded(deframerIdle: stream.deframer.isIdle), on: stream) }
    }

    func h2Data(streamID: Int32, bytes: UnsafeRawBufferPointer) {
        guard let stream = streams[streamID], stream.machine.acceptsData else { return }
        do throws(GRPCMessageDeframer.Failure) {
            try stream.deframer.process(bytes) { message in
                perform(stream.machine.messageReceived(message), on: stream)
            }
        } catch {
            perform(stream.machine.requestFailed(Self.status(for: error)), on: stream)
        }
    }

    /// grpc-go's answers to a malformed request message.
    static func status(for failure: GRPCMessageDeframer.Failure) -> GRPCStatus {
        switch failure {
        case .compressedMessage:
            GRPCStatus(.internal, "grpc: compressed flag set with identity or empty encoding")
        case .invalidFlag(let flag):
            GRPCStatus(.internal, "grpc: invalid compressed flag \(flag)")
        case .messageTooLarge(let length, let limit):
            GRPCStatus(.resourceExhausted, "grpc: received message larger than max (\(length) vs. \(limit))")
        }
    }

    func h2DataEnd(streamID: Int32, endStream: Bool) {
        guard endStream, let stream = streams[streamID] else { return }
        perform(stream.machine.requestEnded(deframerIdle: stream.deframer.isIdle), on: stream)
    }

    func h2StreamClosed(streamID: Int32, errorCode: UInt32) {
        guard let stream = streams.removeValue(forKey: streamID) else { return }
        perform(stream.machine.streamClosed(GRPCStatus(.cancelled, "stream closed")), on: stream)
    }

    func h2GoAway(lastStreamID: Int32, errorCode: UInt32) {}

    func h2ReadData(streamID: Int32, into destination: UnsafeMutableRawBufferPointer) -> H2ReadResult {
        guard let stream = streams[streamID], let outbound = stream.outbound else { return .failure }
        switch outbound.read(into: destination) {
        case .deferred:
            return .deferred
        case .bytes(let count, let end):
            return .data(count: count, end: end ? .trailers(GRPCHeaders.trailers(stream.machine.trailerStatus)) : .none)
        }
    }

    func h2HeadersSent(streamID: Int32, endStream: Bool) {
        guard let stream = streams[streamID] else { return }
        perform(stream.machine.headersSent(endStream: endStream), on: stream)
    }
}
