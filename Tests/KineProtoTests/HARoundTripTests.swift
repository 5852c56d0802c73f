import KineCore
import KineProto
import Testing

/// encode → decode round trips for the kine.ha.v1 peer status, every field set to a value that
/// differs from its default, so a field that is not carried either way shows.
@Suite struct HARoundTripTests {
    @Test func statusCarriesEveryField() throws {
        var status = HAStatus()
        status.node = "a"
        status.term = 7
        status.role = "leader"
        status.leader = "a"
        status.paused = true
        status.maxRevision = 1_000_000_123
        status.highestServed = 1_000_000_124
        status.subscription = "ready"
        status.lagRevisions = 3
        status.postgresUp = true
        status.clockUnixMilliseconds = 1_764_000_000_000
        status.replication = "sync"
        status.syncActive = true
        status.epochStart = 1_000_000_000
        status.hasData = true
        status.priority = "high"
        status.schemaVersion = 2
        status.localMaxID = 99
        status.reunionWinner = "b"
        status.witnessLost = true
        status.serving = true
        status.lastWriteUnixMilliseconds = 1_764_000_000_500
        status.pausedUntilUnixMilliseconds = 1_764_000_060_000
        status.pauseSetUnixMilliseconds = 1_764_000_000_001
        status.handoverTo = "b"
        status.witness = "reachable"
        status.reunionForkID = 42
        var peer = HAPeerView()
        peer.node = "b"
        peer.rpcOK = true
        peer.role = "follower"
        peer.term = 7
        status.peer = peer
        #expect(try ProtoDecode.haStatus(ProtoEncode.haStatus(status)) == status)
        var idle = status
        idle.serving = false
        #expect(try ProtoDecode.haStatus(ProtoEncode.haStatus(idle)).serving == false)
    }
}
