/// Hears every call to a method the router knows: its start and its final status (as
/// go-grpc-prometheus counts them). Called on the connection's event loop: keep it cheap.
public protocol GRPCServerObserver: Sendable {
    func callStarted(path: String, streaming: Bool)
    /// `code` is the status the call ended with (a stream the client reset ends as Canceled).
    func callHandled(path: String, streaming: Bool, code: Int, duration: Duration)
}
