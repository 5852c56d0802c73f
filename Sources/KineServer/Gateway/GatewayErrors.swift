import KineCore
import KineHTTP2
import KineProto

/// How etcd's gateway (grpc-gateway v1.16) turns a gRPC status into an HTTP answer.
enum GatewayErrors {
    /// `runtime.HTTPStatusFromCode`.
    static func httpStatus(_ code: Int) -> Int {
        switch GRPCStatusCode(rawValue: code) {
        case .ok: 200
        case .cancelled: 408
        case .unknown: 500
        case .invalidArgument: 400
        case .deadlineExceeded: 504
        case .notFound: 404
        case .alreadyExists: 409
        case .permissionDenied: 403
        case .unauthenticated: 401
        case .resourceExhausted: 429
        case .failedPrecondition: 400
        case .aborted: 409
        case .outOfRange: 400
        case .unimplemented: 501
        case .internal: 500
        case .unavailable: 503
        case .dataLoss: 500
        case nil: 500
        }
    }

    /// A unary failure (`runtime.DefaultHTTPError`): `{"error":M,"code":N,"message":M}`.
    static func unary(_ status: GRPCStatus) -> HTTP1Response {
        let message = ProtoJSON.quoted(status.message)
        var body = Array(#"{"error":"#.utf8) + message
        body += Array(#","code":\#(status.code),"message":"#.utf8) + message + [UInt8(ascii: "}")]
        return HTTP1Response(status: httpStatus(status.code), contentType: "application/json", body: body)
    }

    /// A failure once a stream began (`handleForwardResponseStreamError`), with no trailing newline.
    static func streamBody(_ status: GRPCStatus) -> [UInt8] {
        let http = httpStatus(status.code)
        return Array(#"{"error":{"grpc_code":\#(status.code),"http_code":\#(http),"message":"#.utf8)
            + ProtoJSON.quoted(status.message) + Array(#","http_status":"#.utf8) + ProtoJSON.quoted(HTTP1.reason(http))
            + Array("}}".utf8)
    }

    /// What the transport answers a message over its receive limit.
    static func tooLarge(_ size: Int, limit: Int) -> GRPCStatus {
        GRPCStatus(.resourceExhausted, "grpc: received message larger than max (\(size) vs. \(limit))")
    }
}
