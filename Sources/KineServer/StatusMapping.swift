import KineCore
import KineHTTP2
import KineProto

/// The one place where errors become gRPC statuses.
enum StatusMapping {
    static func status(_ error: EtcdError) -> GRPCStatus {
        GRPCStatus(error.code, error.message)
    }

    /// What grpc-go answers for a payload it cannot unmarshal; etcd's own check for a sort enum
    /// it does not know.
    static func status(_ error: ProtoError) -> GRPCStatus {
        if case .unknownEnumValue(let field, _) = error, field.lowercased().contains("sort") {
            return GRPCStatus(.invalidArgument, "etcdserver: invalid sort option")
        }
        return GRPCStatus(.internal, "grpc: error unmarshalling request: \(error)")
    }

    /// Decodes a request, mapping failures to the status a client would see.
    static func decode<T>(_ bytes: [UInt8], _ decoder: ([UInt8]) throws(ProtoError) -> T) throws(GRPCStatus) -> T {
        do {
            return try decoder(bytes)
        } catch {
            throw status(error)
        }
    }

    /// Decodes a sub-message inside a call that reports `EtcdError`s, with the status a client
    /// would see for a malformed payload.
    static func decodeField<T>(_ body: () throws(ProtoError) -> T) throws(EtcdError) -> T {
        do {
            return try body()
        } catch {
            let status = status(error)
            throw EtcdError(GRPCStatusCode(rawValue: status.code) ?? .internal, status.message)
        }
    }

    /// Runs a Lock or Election call: every failure reaches the client as UNKNOWN with etcd's
    /// text, as from etcd's recipes (`EtcdError.asRecipeError`).
    static func runRecipe<T>(_ body: () async throws(EtcdError) -> T) async throws(GRPCStatus) -> T {
        do {
            return try await body()
        } catch {
            throw status(error.asRecipeError)
        }
    }

    /// Runs a store call, mapping etcd errors to statuses.
    static func run<T>(_ body: () async throws(EtcdError) -> T) async throws(GRPCStatus) -> T {
        do {
            return try await body()
        } catch {
            throw status(error)
        }
    }
}
