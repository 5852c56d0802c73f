/// `grpc.health.v1.HealthCheckResponse.ServingStatus`.
///
/// Lives here rather than in KineCore because it is part of the gRPC health protocol, not of
/// the etcd data model.
public enum HealthServingStatus: Int32, Sendable, Hashable {
    case unknown = 0
    case serving = 1
    case notServing = 2
    /// Only meaningful for `Health/Watch`.
    case serviceUnknown = 3
}
