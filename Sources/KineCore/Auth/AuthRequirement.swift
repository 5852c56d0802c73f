/// What a request needs the caller to be allowed, in etcd's terms.
public enum AuthRequirement: Sendable, Hashable {
    case read(key: Bytes, rangeEnd: Bytes)
    case write(key: Bytes, rangeEnd: Bytes)
    /// The root role (maintenance and auth management).
    case admin
}

extension AuthRequirement {
    /// A Range reads its range.
    public static func of(_ request: RangeRequest) -> [AuthRequirement] {
        [.read(key: request.key, rangeEnd: request.rangeEnd)]
    }

    /// A Put writes its key, and reads it too when it asks for the previous value. (The keys of
    /// the lease it attaches are checked by the caller, which knows them.)
    public static func of(_ request: PutRequest) -> [AuthRequirement] {
        var needs: [AuthRequirement] = [.write(key: request.key, rangeEnd: [])]
        if request.prevKV { needs.append(.read(key: request.key, rangeEnd: [])) }
        return needs
    }

    public static func of(_ request: DeleteRangeRequest) -> [AuthRequirement] {
        var needs: [AuthRequirement] = [.write(key: request.key, rangeEnd: request.rangeEnd)]
        if request.prevKV { needs.append(.read(key: request.key, rangeEnd: request.rangeEnd)) }
        return needs
    }

    /// Every compare reads its range; every operation of both branches is checked, whichever
    /// runs, as etcd does (a failure branch the user may not take refuses the whole Txn). A
    /// nested Txn is checked the same way (etcd 3.5.1 skips nested Txns: see docs/compatibility.md).
    public static func of(_ request: TxnRequest) -> [AuthRequirement] {
        var needs = request.compare.map { AuthRequirement.read(key: $0.key, rangeEnd: $0.rangeEnd) }
        for operation in request.success + request.failure {
            switch operation {
            case .range(let range):
                needs += of(range)
            case .put(let put):
                // etcd checks only the key of a Put inside a Txn.
                needs.append(.write(key: put.key, rangeEnd: []))
            case .deleteRange(let delete):
                needs += of(delete)
            case .txn(let nested):
                needs += of(nested)
            case .empty:
                break
            }
        }
        return needs
    }
}
