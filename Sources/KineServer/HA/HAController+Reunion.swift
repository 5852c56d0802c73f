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
        let localEpoch = try await admin.run(HASQL.epoch)
        let peerEpoch = try await peerSQL.run(HASQL.epoch)
        let fork = localEpoch.term == peerEpoch.term
            ? max(localEpoch.forkID, peerEpoch.forkID) : (localEpoch.term > peerEpoch.term ? localEpoch.forkID : peerEpoch.forkID)
        let localWrites = try await admin.run(HASQL.writesAbove(fork))
        let peerWrites = try await peerSQL.run(HASQL.writesAbove(fork))
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
