import KineCore
import KineHA
import KinePostgres
import KineSQL

/// The reunion after a split, as the deciding node computes it from both databases, and the
/// loser's saving of its split writes on the winner before its copy is emptied.
extension HAController {
    static let saveBatch = 500

    /// Both sides' candidates at one moment: the fork is the one the higher term's promotion
    /// recorded (on a tie of terms the later of the two), writes are rows above it that are not
    /// kine's own bookkeeping.
    func decideReunion(with peer: PeerStatus, machine: HARoleMachine) async throws -> (ReunionDecision, Int64) {
        let localEpoch = try await admin.pipeline([SQLStatement(HASQL.peerEpoch)])[0].rows.first
        let peerEpoch = try await peerSQL.pipeline([SQLStatement(HASQL.peerEpoch)])[0].rows.first
        let localTerm = localEpoch?.int64(0) ?? 0
        let peerTerm = peerEpoch?.int64(0) ?? 0
        let localFork = localEpoch?.int64(3) ?? 0
        let peerFork = peerEpoch?.int64(3) ?? 0
        let fork = localTerm == peerTerm ? max(localFork, peerFork) : (localTerm > peerTerm ? localFork : peerFork)
        let localWrites = try await admin.pipeline([HASQL.writesAbove(fork)])[0].rows.first?.int64(0) ?? 0
        let peerWrites = try await peerSQL.pipeline([HASQL.writesAbove(fork)])[0].rows.first?.int64(0) ?? 0
        let lastWrite = shared.withLock { $0.lastWriteUnixMilliseconds }
        let witnessed = ha.witness != nil
        let me = ReunionCandidate(
            node: node, term: machine.term, priority: ha.priority, writesSinceFork: localWrites,
            lastWriteUnixMilliseconds: localWrites > 0 ? lastWrite : 0, reachedWitness: witnessed ? !machine.witnessLost : nil)
        let them = ReunionCandidate(
            node: peer.node, term: peer.term, priority: peer.priority, writesSinceFork: peerWrites,
            lastWriteUnixMilliseconds: peerWrites > 0 ? peer.lastWriteUnixMilliseconds : 0, reachedWitness: witnessed ? !peer.witnessLost : nil)
        logger.notice("HA: reunion candidates", metadata: [
            "kine.ha.forkID": "\(fork)", "kine.ha.localWrites": "\(localWrites)", "kine.ha.peerWrites": "\(peerWrites)",
            "kine.ha.localLastWriteMs": "\(me.lastWriteUnixMilliseconds)", "kine.ha.peerLastWriteMs": "\(them.lastWriteUnixMilliseconds)",
            "kine.ha.localWitness": "\(me.reachedWitness.map { "\($0)" } ?? "none")",
            "kine.ha.peerWitness": "\(them.reachedWitness.map { "\($0)" } ?? "none")",
        ])
        return (Reunion.decide(me, them, policy: ha.reunionPolicy, maxClockSkew: ha.maxClockSkew), fork)
    }

    /// Copies every row this node has above `fork` into the leader's `kine_ha_split_writes`
    /// (replicated, so both nodes show it once this node follows); idempotent, so a resync that
    /// failed half-way saves the rest next time.
    func saveSplitWrites(above fork: Int64, leaderTerm: UInt64, reason: String) async throws -> Int {
        var after: Int64 = 0
        var saved = 0
        while true {
            let rows = try await admin.pipeline([HASQL.rowsAbove(fork, after: after, limit: Self.saveBatch)])[0].rows
            guard let last = rows.last else { return saved }
            _ = try await peerSQL.pipeline([
                HASQL.saveSplitWrites(node: node, forkID: fork, leaderTerm: leaderTerm, reason: reason, rows: rows)
            ])
            saved += rows.count
            after = last.int64(0)
        }
    }

    /// Split writes this node received as an earlier reunion's winner go to its leader too
    /// before the local table is emptied (the leader may never have copied them).
    func carrySplitWritesToLeader() async throws {
        var after = (node: "", id: Int64.min)
        while true {
            let rows = try await admin.pipeline([HASQL.splitWritesAfter(node: after.node, id: after.id, limit: Self.saveBatch)])[0].rows
            guard let last = rows.last else { return }
            _ = try await peerSQL.pipeline([HASQL.copySplitWrites(rows)])
            after = (last.text(0), last.int64(1))
        }
    }
}
