import KineCore

/// A write the Writer serialises: etcd's three write RPCs.
enum WriteRequest: Sendable {
    case put(PutRequest)
    case deleteRange(DeleteRangeRequest)
    case txn(TxnRequest)
    /// Delete every key attached to the lease in one revision, then the lease.
    case revokeLease(Int64)
    /// Revoke every lease whose deadline has passed (one revision each).
    case expireLeases
}

enum WriteResponse: Sendable {
    case put(PutResponse)
    case deleteRange(DeleteRangeResponse)
    case txn(TxnResponse)
    case leaseRevoked(LeaseRevokeResponse)
    case leasesExpired([Int64])
}
