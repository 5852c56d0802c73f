/// A method implementation, run as a Swift task. A unary handler starts on the connection's event
/// loop and runs there until its first suspension (the loop is its preferred executor, so an
/// answer from memory never leaves the loop); a bidirectional handler runs on the global
/// executor. Handlers must not block. Cancellation of the task means the client went away
/// (RST_STREAM), the deadline passed, or the server is shutting down.
public enum GRPCMethod: Sendable {
    case unary(@Sendable (_ request: [UInt8], _ context: GRPCCallContext) async throws(GRPCStatus) -> [UInt8])
    case bidirectional(
        @Sendable (_ requests: GRPCRequestStream, _ responses: GRPCResponseWriter, _ context: GRPCCallContext)
            async throws(GRPCStatus) -> Void
    )
}

/// Maps a `:path` to a method.
public protocol GRPCRouter: Sendable {
    func method(for path: String) -> GRPCMethod?
    /// Whether `service` (e.g. `etcdserverpb.KV`) exists; only used to word the UNIMPLEMENTED message
    /// ("unknown service X" vs "unknown method Y for service X"). Defaults to `false`.
    func hasService(_ service: String) -> Bool
}

extension GRPCRouter {
    public func hasService(_ service: String) -> Bool { false }

    /// The UNIMPLEMENTED message for a path with no method, in grpc-go's words: "malformed method
    /// name", "unknown service X", "unknown method Y for service X".
    public func unknownMethodMessage(_ path: String) -> String {
        var trimmed = Substring(path)
        guard trimmed.first == "/" else { return "malformed method name: \"\(path)\"" }
        trimmed = trimmed.dropFirst()
        guard let slash = trimmed.lastIndex(of: "/") else { return "malformed method name: \"\(path)\"" }
        let service = String(trimmed[trimmed.startIndex..<slash])
        let method = String(trimmed[trimmed.index(after: slash)...])
        if hasService(service) { return "unknown method \(method) for service \(service)" }
        return "unknown service \(service)"
    }
}
