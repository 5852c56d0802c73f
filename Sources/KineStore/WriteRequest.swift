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

extension WriteRequest {
    /// A plain DeleteRange of a key range without `prev_kv`: done entirely in SQL (one
    /// `INSERT … SELECT` of the tombstones), so deleting a huge prefix never ships its rows and
    /// values through kine. It runs in a round of its own.
    var isBulkDelete: Bool {
        guard case .deleteRange(let delete) = self, !delete.prevKV else { return false }
        if case .interval = KeyRange(key: delete.key, rangeEnd: delete.rangeEnd) { return true }
        return false
    }
}
