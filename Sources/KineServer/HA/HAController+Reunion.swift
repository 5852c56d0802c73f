import KineCore
import KineHA
import KinePostgres
import KineSQL
import Logging

/// The reunion after a split: the deciding node reads both databases and hands the candidates to
/// `Reunion` (KineHA), which holds the rules; and the loser's saving of its split writes on the
/// winner before its copy is emptied.
extension HAController {
    static let saveBatch = 500

    /// Both sides' candidates at one moment: the fork (`Reunion.fork`), and each side's rows above
    /// it that are not kine's own bookkeeping.
    func decideReunion(with peer: PeerStatus, _ loop: LoopState) async throws -> (ReunionDecision, Int64) {
        let fork = Reunion.fork(local: try await admin.run(HASQL.epoch), peer: try await peerSQL.run(HASQL.epoch))
        let localWrites = try await admin.run(HASQL.writesAbove(fork))
        let peerWrites = try await peerSQL.run(HASQL.writesAbove(fork))
        let witnessConfigured = ha.witness != nil
        let me = ReunionCandidate(
            node: node, term: loop.machine.term, priority: ha.priority, writesSinceFork: localWrites,
            newestWriteUnixMilliseconds: loop.ledger.lastWriteUnixMilliseconds, witnessConfigured: witnessConfigured,
            lostWitness: loop.machine.witnessLost)
        let them = ReunionCandidate(
            node: peer.node, term: peer.term, priority: peer.priority, writesSinceFork: peerWrites,
            newestWriteUnixMilliseconds: peer.lastWriteUnixMilliseconds, witnessConfigured: witnessConfigured,
            lostWitness: peer.witnessLost)
        logger.notice(
            "HA: reunion candidates",
            metadata: [
                "kine.ha.forkID": "\(fork)", "kine.ha.localWrites": "\(localWrites)", "kine.ha.peerWrites": "\(peerWrites)",
                "kine.ha.localLastWriteMs": "\(me.lastWriteUnixMilliseconds)",
                "kine.ha.peerLastWriteMs": "\(them.lastWriteUnixMilliseconds)",
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
            let rows = try await admin.run(HASQL.rowsAbove(fork, after: after, limit: Self.saveBatch))
            guard let last = rows.last else { return saved }
            _ = try await peerSQL.pipeline([
                HASQL.saveSplitWrites(node: node, forkID: fork, leaderTerm: leaderTerm, reason: reason, rows: rows)
            ])
            saved += rows.count
            after = last.id
        }
    }

    /// Split writes this node received as an earlier reunion's winner go to its leader too
    /// before the local table is emptied (the leader may never have copied them).
    func carrySplitWritesToLeader() async throws {
        var after = (node: "", id: Int64.min)
        while true {
            let writes = try await admin.run(HASQL.splitWritesAfter(node: after.node, id: after.id, limit: Self.saveBatch))
            guard let last = writes.last else { return }
            _ = try await peerSQL.pipeline([HASQL.copySplitWrites(writes)])
            after = (last.node, last.row.id)
        }
    }
}
