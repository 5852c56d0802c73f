internal import CNGHTTP2
import NIOCore

/// HTTP/2 error codes (RFC 9113 §7) used on the wire.
enum H2ErrorCode {
    static let noError: UInt32 = 0x0
    static let protocolError: UInt32 = 0x1
    static let internalError: UInt32 = 0x2
    static let flowControlError: UInt32 = 0x3
    static let refusedStream: UInt32 = 0x7
    static let cancel: UInt32 = 0x8
    static let enhanceYourCalm: UInt32 = 0xB
}

/// How a DATA run ends, returned by the delegate's data provider.
enum H2DataEnd {
    case none
    /// Set END_STREAM on the last DATA frame (client requests).
    case endStream
    /// End the DATA without END_STREAM and send these trailers (server responses).
    case trailers(HeaderBlock)
}

enum H2ReadResult {
    case data(count: Int, end: H2DataEnd)
    case deferred
    /// Reset the stream (INTERNAL_ERROR).
    case failure
}

/// Receives nghttp2's events. Called synchronously from inside `receive`/`send`, on the connection's
/// event loop; implementations must not close the channel or re-enter the session's I/O from here.
protocol NGHTTP2SessionDelegate: AnyObject {
    func h2BeginHeaders(streamID: Int32, isTrailers: Bool)
    /// Return false to reset the stream.
    func h2Header(streamID: Int32, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>, isTrailers: Bool) -> Bool
    func h2HeadersEnd(streamID: Int32, isTrailers: Bool, endStream: Bool)
    func h2Data(streamID: Int32, bytes: UnsafeRawBufferPointer)
    func h2DataEnd(streamID: Int32, endStream: Bool)
    func h2StreamClosed(streamID: Int32, errorCode: UInt32)
    func h2GoAway(lastStreamID: Int32, errorCode: UInt32)
    func h2ReadData(streamID: Int32, into destination: UnsafeMutableRawBufferPointer) -> H2ReadResult
    func h2HeadersSent(streamID: Int32, endStream: Bool)
}

/// The single owner of one `nghttp2_session`: the only type in this module that calls nghttp2.
///
/// Not Sendable: confined to its connection's event loop. nghttp2 is used as a pure state machine:
/// `receive` feeds inbound bytes (`nghttp2_session_mem_recv`), `send` collects outbound bytes
/// (`nghttp2_session_mem_send`). Callbacks find this object through `user_data`
/// (`Unmanaged.passUnretained`): the C session is deleted in `deinit`, so it never outlives it.
final class NGHTTP2Session {
    enum Role {
        case server
        case client
    }

    private var session: OpaquePointer?
    private unowned let delegate: any NGHTTP2SessionDelegate
    /// A server checks request headers itself (`HTTP2RequestHeaderRules`); a client leaves
    /// response checks to nghttp2.
    private let checksRequestHeaders: Bool
    /// The rules of the request header block being received (server only).
    private var headerRules: HTTP2RequestHeaderRules?

    init?(role: Role, delegate: any NGHTTP2SessionDelegate) {
        self.delegate = delegate
        checksRequestHeaders = role == .server
        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0, let callbacks else { return nil }
        defer { nghttp2_session_callbacks_del(callbacks) }
        Self.install(callbacks)

        var option: OpaquePointer?
        guard nghttp2_option_new(&option) == 0, let option else { return nil }
        defer { nghttp2_option_del(option) }
        // We never use priorities; keeping closed streams around only costs memory.
        nghttp2_option_set_no_closed_streams(option, 1)
        if role == .server {
            // Requests are checked by `HTTP2RequestHeaderRules` (nghttp2's rules but any
            // `:authority`, as etcd takes), not by nghttp2's HTTP messaging.
            nghttp2_option_set_no_http_messaging(option, 1)
        }
        if role == .client {
            // Until the server's SETTINGS arrive, assume the unlimited streams our server offers.
            nghttp2_option_set_peer_max_concurrent_streams(option, 1 << 20)
        }

        var created: OpaquePointer?
        let userData = Unmanaged.passUnretained(self).toOpaque()
        let rv: Int32
        switch role {
        case .server: rv = nghttp2_session_server_new2(&created, callbacks, userData, option)
        case .client: rv = nghttp2_session_client_new2(&created, callbacks, userData, option)
        }
        guard rv == 0, let created else { return nil }
        self.session = created
    }

    deinit {
        if let session { nghttp2_session_del(session) }
    }

    // MARK: I/O

    /// Feeds inbound bytes. Returns nil on success, or a description of a fatal session error (the
    /// connection must be closed after flushing whatever `send` still produces, e.g. GOAWAY).
    func receive(_ bytes: UnsafeRawBufferPointer) -> String? {
        guard let session else { return "no session" }
        guard let base = bytes.baseAddress, bytes.count > 0 else { return nil }
        let rv = nghttp2_session_mem_recv(session, base.assumingMemoryBound(to: UInt8.self), bytes.count)
        if rv < 0 {
            return String(cString: nghttp2_strerror(Int32(truncatingIfNeeded: rv)))
        }
        return nil
    }

    /// Appends every frame nghttp2 wants to send to `buffer`. Returns false on a fatal error.
    func send(into buffer: inout ByteBuffer) -> Bool {
        guard let session else { return false }
        while true {
            var pointer: UnsafePointer<UInt8>?
            let count = nghttp2_session_mem_send(session, &pointer)
            if count < 0 { return false }
            guard count > 0, let pointer else { return true }
            buffer.writeBytes(UnsafeRawBufferPointer(start: pointer, count: count))
        }
    }

    var wantsRead: Bool { session.map { nghttp2_session_want_read($0) != 0 } ?? false }
    var wantsWrite: Bool { session.map { nghttp2_session_want_write($0) != 0 } ?? false }

    // MARK: submissions

    struct Settings {
        var maxConcurrentStreams: UInt32?
        var initialWindowSize: UInt32?
        var maxFrameSize: UInt32?
        var maxHeaderListSize: UInt32?
        var enablePush: Bool?
    }

    @discardableResult
    func submitSettings(_ settings: Settings) -> Bool {
        guard let session else { return false }
        var entries: [nghttp2_settings_entry] = []
        if let value = settings.maxConcurrentStreams {
            entries.append(.init(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: value))
        }
        if let value = settings.initialWindowSize {
            entries.append(.init(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: value))
        }
        if let value = settings.maxFrameSize {
            entries.append(.init(settings_id: Int32(NGHTTP2_SETTINGS_MAX_FRAME_SIZE.rawValue), value: value))
        }
        if let value = settings.maxHeaderListSize {
            entries.append(.init(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: value))
        }
        if let value = settings.enablePush {
            entries.append(.init(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: value ? 1 : 0))
        }
        return nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), entries, entries.count) == 0
    }

    /// Sets the connection-level receive window (sends WINDOW_UPDATE on stream 0).
    @discardableResult
    func setConnectionWindowSize(_ size: Int32) -> Bool {
        guard let session else { return false }
        return nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, size) == 0
    }

    /// Submits response HEADERS; with `hasData` a data provider (the delegate's `h2ReadData`)
    /// follows, otherwise the HEADERS carry END_STREAM (Trailers-Only / headers-only responses).
    @discardableResult
    func submitResponse(streamID: Int32, headers: HeaderBlock, hasData: Bool) -> Bool {
        guard let session else { return false }
        return headers.withNV { nva, count in
            if hasData {
                var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: dataReadCallback)
                return nghttp2_submit_response(session, streamID, nva, count, &provider)
            }
            return nghttp2_submit_response(session, streamID, nva, count, nil)
        } == 0
    }

    /// Submits a request with a data provider; returns the new stream id, or nil.
    func submitRequest(headers: HeaderBlock) -> Int32? {
        guard let session else { return nil }
        let id = headers.withNV { nva, count in
            var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: dataReadCallback)
            return nghttp2_submit_request(session, nil, nva, count, &provider, nil)
        }
        return id > 0 ? id : nil
    }

    @discardableResult
    func submitTrailer(streamID: Int32, headers: HeaderBlock) -> Bool {
        guard let session else { return false }
        return headers.withNV { nva, count in nghttp2_submit_trailer(session, streamID, nva, count) } == 0
    }

    func submitReset(streamID: Int32, errorCode: UInt32) {
        guard let session else { return }
        _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, errorCode)
    }

    /// Resumes a deferred data provider; harmless if the stream is not deferred.
    func resumeData(streamID: Int32) {
        guard let session else { return }
        _ = nghttp2_session_resume_data(session, streamID)
    }

    /// GOAWAY with the last stream id we processed: new streams are refused, existing ones continue.
    func submitGoAway(errorCode: UInt32) {
        guard let session else { return }
        let last = nghttp2_session_get_last_proc_stream_id(session)
        _ = nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, errorCode, nil, 0)
    }

    /// Remote window available for `streamID` (tests / diagnostics).
    func remoteWindowSize(streamID: Int32) -> Int {
        guard let session else { return 0 }
        return Int(nghttp2_session_get_stream_remote_window_size(session, streamID))
    }

    // MARK: callbacks

    fileprivate static func from(_ userData: UnsafeMutableRawPointer?) -> NGHTTP2Session? {
        guard let userData else { return nil }
        return Unmanaged<NGHTTP2Session>.fromOpaque(userData).takeUnretainedValue()
    }

    private static func install(_ callbacks: OpaquePointer) {
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, userData in
            guard let owner = NGHTTP2Session.from(userData), let frame else { return 0 }
            guard frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue) else { return 0 }
            let isTrailers = frame.pointee.headers.cat == NGHTTP2_HCAT_HEADERS
            if owner.checksRequestHeaders { owner.headerRules = HTTP2RequestHeaderRules(isTrailers: isTrailers) }
            owner.delegate.h2BeginHeaders(streamID: frame.pointee.hd.stream_id, isTrailers: isTrailers)
            return 0
        }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) {
            _, frame, name, nameLength, value, valueLength, _, userData in
            guard let owner = NGHTTP2Session.from(userData), let frame else { return 0 }
            guard frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue) else { return 0 }
            let nameBytes = UnsafeBufferPointer(start: name, count: name == nil ? 0 : nameLength)
            let valueBytes = UnsafeBufferPointer(start: value, count: value == nil ? 0 : valueLength)
            switch owner.headerRules?.check(name: nameBytes, value: valueBytes) ?? .accept {
            case .accept: break
            case .ignore: return 0
            case .reject:
                // nghttp2 resets a stream whose header callback fails with INTERNAL_ERROR unless a
                // reset is already queued: a malformed request is a PROTOCOL_ERROR.
                _ = nghttp2_submit_rst_stream(
                    owner.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), frame.pointee.hd.stream_id, H2ErrorCode.protocolError)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
            }
            let ok = owner.delegate.h2Header(
                streamID: frame.pointee.hd.stream_id, name: nameBytes, value: valueBytes,
                isTrailers: frame.pointee.headers.cat == NGHTTP2_HCAT_HEADERS
            )
            return ok ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            guard let owner = NGHTTP2Session.from(userData), let frame else { return 0 }
            let header = frame.pointee.hd
            let endStream = header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
            switch header.type {
            case UInt8(NGHTTP2_HEADERS.rawValue):
                if let rules = owner.headerRules {
                    owner.headerRules = nil
                    guard rules.complete(endStream: endStream) else {
                        // A malformed request (a pseudo-header missing, trailers that do not end
                        // the stream): reset it, as nghttp2's own checks would.
                        return nghttp2_submit_rst_stream(
                            owner.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), header.stream_id, H2ErrorCode.protocolError) == 0
                            ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
                    }
                }
                owner.delegate.h2HeadersEnd(
                    streamID: header.stream_id,
                    isTrailers: frame.pointee.headers.cat == NGHTTP2_HCAT_HEADERS,
                    endStream: endStream
                )
            case UInt8(NGHTTP2_DATA.rawValue):
                owner.delegate.h2DataEnd(streamID: header.stream_id, endStream: endStream)
            case UInt8(NGHTTP2_GOAWAY.rawValue):
                owner.delegate.h2GoAway(
                    lastStreamID: frame.pointee.goaway.last_stream_id,
                    errorCode: frame.pointee.goaway.error_code
                )
            default:
                break
            }
            return 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) {
            _, _, streamID, data, length, userData in
            guard let owner = NGHTTP2Session.from(userData), let data else { return 0 }
            owner.delegate.h2Data(streamID: streamID, bytes: UnsafeRawBufferPointer(start: data, count: length))
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, userData in
            guard let owner = NGHTTP2Session.from(userData) else { return 0 }
            owner.delegate.h2StreamClosed(streamID: streamID, errorCode: errorCode)
            return 0
        }
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks) { _, frame, userData in
            guard let owner = NGHTTP2Session.from(userData), let frame else { return 0 }
            let header = frame.pointee.hd
            if header.type == UInt8(NGHTTP2_HEADERS.rawValue) {
                owner.delegate.h2HeadersSent(
                    streamID: header.stream_id,
                    endStream: header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
                )
            }
            return 0
        }
    }

    fileprivate func readData(
        streamID: Int32, buffer: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        switch delegate.h2ReadData(streamID: streamID, into: UnsafeMutableRawBufferPointer(start: buffer, count: length)) {
        case .deferred:
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        case .failure:
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        case .data(let count, .none):
            return count
        case .data(let count, .endStream):
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            return count
        case .data(let count, .trailers(let trailers)):
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue | NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
            // nghttp2 allows submitting trailers from inside the read callback.
            if !submitTrailer(streamID: streamID, headers: trailers) {
                return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
            }
            return count
        }
    }
}

/// The data provider callback shared by every stream: it forwards to the session owner's delegate.
private let dataReadCallback: nghttp2_data_source_read_callback = {
    _, streamID, buffer, length, flags, _, userData in
    guard let owner = NGHTTP2Session.from(userData), let buffer, let flags else {
        return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
    }
    return owner.readData(streamID: streamID, buffer: buffer, length: length, flags: flags)
}

extension HeaderBlock {
    /// Calls `body` with an `nghttp2_nv` array pointing into this block's storage (nghttp2 copies
    /// the fields during submission).
    fileprivate func withNV(_ body: (UnsafePointer<nghttp2_nv>?, Int) -> Int32) -> Int32 {
        let fields = self.fields
        return storage.withUnsafeBufferPointer { bytes -> Int32 in
            guard let base = bytes.baseAddress, !fields.isEmpty else { return body(nil, 0) }
            let mutableBase = UnsafeMutablePointer(mutating: base)
            return withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: fields.count) { nva -> Int32 in
                for (index, field) in fields.enumerated() {
                    nva.initializeElement(
                        at: index,
                        to: nghttp2_nv(
                            name: mutableBase + field.nameStart,
                            value: mutableBase + field.valueStart,
                            namelen: field.nameCount,
                            valuelen: field.valueCount,
                            flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
                        )
                    )
                }
                defer { _ = nva.deinitialize() }
                return body(UnsafePointer(nva.baseAddress), fields.count)
            }
        }
    }
}
