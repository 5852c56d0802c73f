/// The gRPC status codes; the numbers are the wire values of `grpc-status`. The one enum both
/// the store's errors (`EtcdError`) and the transport's statuses (`GRPCStatus`) use.
public enum GRPCStatusCode: Int, Sendable, Hashable {
    case ok = 0
    case cancelled = 1
    case unknown = 2
    case invalidArgument = 3
    case deadlineExceeded = 4
    case notFound = 5
    case alreadyExists = 6
    case permissionDenied = 7
    case resourceExhausted = 8
    case failedPrecondition = 9
    case aborted = 10
    case outOfRange = 11
    case unimplemented = 12
    case `internal` = 13
    case unavailable = 14
    case dataLoss = 15
    case unauthenticated = 16
}
