import KineCore
import KineProto

extension ServerIdentity {
    /// `header` with this server's ids and term.
    func filled(_ header: ResponseHeader) -> ResponseHeader {
        var header = header
        fill(&header)
        return header
    }

    /// A response that starts with `header` (field 1, etcd's place for it), ids and term filled
    /// in: the services that write their responses field by field (Auth, Lock, Election).
    func responseStartingWith(_ header: ResponseHeader) -> ProtoFieldWriter {
        var writer = ProtoFieldWriter()
        writer.header(1, filled(header))
        return writer
    }
}
