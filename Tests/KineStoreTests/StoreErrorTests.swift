import KineCore
import KineSQL
import Testing

@testable import KineStore

/// Database failures as etcd clients see them.
@Suite("Store error mapping")
struct StoreErrorTests {
    @Test("Broken connections, ended sessions and a fenced (read-only) database are Unavailable; other server errors Unknown")
    func mapping() {
        let timedOut = EtcdError.requestTimedOut
        #expect(StoreError.etcdError(for: SQLError(kind: .connection, message: "server closed the connection")) == timedOut)
        #expect(
            StoreError.etcdError(
                for: SQLError(kind: .server, sqlState: "57P01", message: "terminating connection due to administrator command")) == timedOut
        )
        #expect(
            StoreError.etcdError(
                for: SQLError(kind: .server, sqlState: "25006", message: "cannot execute INSERT in a read-only transaction")) == timedOut)
        let other = StoreError.etcdError(for: SQLError(kind: .server, sqlState: "42P01", message: "relation \"kine\" does not exist"))
        #expect(other.code == .unknown && other.message == "relation \"kine\" does not exist")
    }
}
