import KineCore

/// A write the Writer serialises: etcd's three write RPCs.
enum WriteRequest: Sendable {
    case put(PutRequest)
    case deleteRange(DeleteRangeRequest)
    case txn(TxnRequest)
}

enum WriteResponse: Sendable {
    case put(PutResponse)
    case deleteRange(DeleteRangeResponse)
    case txn(TxnResponse)
}
