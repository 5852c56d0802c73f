import Foundation
import KineCore
import KineHA
import KineHTTP2
import KinePostgres
import KineProto
import KineSQL
import KineStore
import Logging
import Synchronization

/// One probe round: the local database, the peer on both channels, and what the Status RPC,
/// etcd's Status and MemberList report from it.
extension HAController {
    func observe(_ machine: HARoleMachine) async -> HAObservation {
        let timeout = ha.timing.probeTimeout
        let request = HAStatusRequest(fromNode: node, term: machine.term)
        let admin = self.admin
        let peerSQL = self.peerSQL
        let localProbe = HASQL.localProbe(subscription: subscription, followerApplication: HANames.application(peerName))
        let peerProbe = HASQL.peerProbe(slot: subscription)
        async let localAnswer = withDeadline(timeout) { (try? await admin.run(localProbe)) ?? nil }
        async let peerAnswer = withDeadline(timeout) { [peerRPC] in await peerRPC.status(request) }
        async let peerSQLAnswer = withDeadline(timeout) { (try? await peerSQL.run(peerProbe)) ?? nil }
        async let witnessAnswer = probeWitness(timeout: timeout)
        let (localRound, answer, peerRound, witness) = await (localAnswer ?? nil, peerAnswer, peerSQLAnswer ?? nil, witnessAnswer)

        var local = HAObservation.Local(postgresUp: localRound != nil)
        local.witness = witness
        local.epochStart = stores.epoch?.startRevision ?? 0
        if let localRound {
            local.copy = localRound.copy
            local.copyComplete = localRound.copyComplete
            local.followerStreaming = localRound.followerStreaming
            local.subscribedTerm = localRound.subscribedTerm
            local.hasData = localRound.hasData
            local.maxID = localRound.maxID
        }

        var peer = HAObservation.Peer(sqlOK: peerRound != nil)
        var view = HAPeerView()
        view.node = peerName
        view.sqlOK = peer.sqlOK
        view.lastProbeUnixMilliseconds = Int64(Date().timeIntervalSince1970 * 1000)
        var problem = ""
        switch answer {
        case .success(let status)?:
            view.rpcOK = true
            view.role = status.role
            view.term = status.term
            if status.schemaVersion != ha.schemaVersion {
                problem = "peer \(status.node) runs HA schema version \(status.schemaVersion), this node \(ha.schemaVersion): not pairing"
                peer.sqlOK = true  // alive, but nothing it says is acted on
            } else if status.node == node {
                problem = "the peer at \(ha.peerHost):\(ha.peerPort) has this node's own name \(node): check --ha-peer and --ha-node-name"
                peer.sqlOK = true
            } else {
                learnPeerName(status.node)
                peer.status = status.peerStatus
                commands.adopt(HACommands.Pause(untilUnixMilliseconds: status.pausedUntilUnixMilliseconds, setUnixMilliseconds: status.pauseSetUnixMilliseconds))
            }
        case .failure(let error)?:
            problem = "\(error)"
        case nil:
            problem = "peer HA port \(ha.peerHost):\(ha.peerPort) did not answer within \(timeout)"
        }
        if peerRound == nil {
            problem += (problem.isEmpty ? "" : "; ") + "peer PostgreSQL \(peerDatabase) did not answer within \(timeout)"
        }
        if machine.role.isFollowing, local.copy == .ready || local.copy == .syncing, let peerRound {
            peer.slotLost = peerRound.slotStatus == "missing" || peerRound.slotStatus == "lost"
            local.copyLacksTables = peerRound.publishedTables > (localRound?.subscribedTables ?? 0)
        }
        local.paused = commands.pause.inForce(atUnixMilliseconds: PeerService.wallClock())
        let observation = HAObservation(now: now, local: local, peer: peer)
        view.failedRounds = UInt32(clamping: machine.peerDead(at: observation.now) ? Int(ha.timing.liveness / ha.timing.probeInterval) : 0)
        view.error = problem
        let leaderMax = peerRound?.maxID ?? 0
        recordRound(local: local, view: view, problem: problem,
                    lag: machine.role.isFollowing ? max(leaderMax - local.maxID, 0) : 0, leading: machine.role.isLeading)
        return observation
    }

    /// `--ha-witness`: a TCP connect within the probe timeout (nil: no witness configured).
    func probeWitness(timeout: Duration) async -> Bool? {
        guard let witness = ha.witness else { return nil }
        return await TCPProbe.connects(host: witness.host, port: witness.port, timeout: timeout)
    }

    /// This node's wall clock as the reunion's `newest` rule reads it (tests inject skew).
    var reunionClock: Int64 {
        PeerService.wallClock() + ha.clockOffset.wholeMilliseconds
    }

    /// Keeps what the Status RPC reports, logs a changed problem once, and persists the highest
    /// revision served when it grew.
    func recordRound(
        local: HAObservation.Local, view: HAPeerView, problem: String, lag: Int64, leading: Bool
    ) {
        let served = stores.epoch?.store.watchHub.revision ?? 0
        let epochStart = stores.epoch?.startRevision ?? 0
        let clock = reunionClock
        board.update { status in
            status.postgresUp = local.postgresUp
            status.subscription = local.copy.rawValue
            status.localMaxID = local.maxID
            status.hasData = local.hasData
            status.lagRevisions = lag
            status.peer = view
        }
        let (changedProblem, persist, lastWrite) = shared.withLock { state -> (Bool, Int64?, Int64?) in
            state.highestServed = max(state.highestServed, served)
            // A write of this node's own: the served revision grew past its epoch's start while leading.
            if leading && served > state.lastSeenRevision && served > epochStart && state.lastSeenRevision > 0 {
                state.lastWriteUnixMilliseconds = max(state.lastWriteUnixMilliseconds, clock)
            }
            state.lastSeenRevision = served
            let changed = state.lastProblem != problem
            state.lastProblem = problem
            let persist = state.highestServed > state.persistedHighest && local.postgresUp ? state.highestServed : nil
            if let persist { state.persistedHighest = persist }
            let lastWrite = state.lastWriteUnixMilliseconds > state.persistedLastWrite && local.postgresUp ? state.lastWriteUnixMilliseconds : nil
            if let lastWrite { state.persistedLastWrite = lastWrite }
            return (changed, persist, lastWrite)
        }
        if changedProblem && !problem.isEmpty { logger.warning("HA probe: \(problem)") }
        if changedProblem && problem.isEmpty { logger.info("HA probe: peer answers on both channels") }
        var statements: [SQLStatement] = []
        if let persist { statements.append(HASQL.raiseHighestServed(persist)) }
        if let lastWrite { statements.append(HASQL.raiseLastWrite(lastWrite)) }
        if let pause = commands.takeDirtyPause() {
            statements.append(HASQL.writePause(untilUnixMilliseconds: pause.untilUnixMilliseconds, setUnixMilliseconds: pause.setUnixMilliseconds))
            logger.notice(pause.untilUnixMilliseconds > 0 ? "HA: maintenance pause until \(pause.untilUnixMilliseconds) (Unix ms)" : "HA: maintenance pause ended")
        }
        if !statements.isEmpty { Task { [admin] in for statement in statements { _ = try? await admin.pipeline([statement]) } } }
    }

    /// Role, term and leader as the Status RPC, etcd's Status and MemberList report them.
    func publish(_ machine: HARoleMachine) {
        let revision = stores.epoch?.store.watchHub.revision ?? 0
        let epochStart = stores.epoch?.startRevision ?? 0
        let (highest, lastWrite) = shared.withLock { (max($0.highestServed, revision), $0.lastWriteUnixMilliseconds) }
        let pause = commands.pause
        let witnessReachable = machine.lastWitness == true
        let lag = board.update { status -> Int64 in
            status.node = node
            status.term = machine.term
            status.role = machine.role.rawValue
            status.leader = machine.leader
            status.replication = ha.replication.rawValue
            status.syncActive = machine.synchronous
            status.maxRevision = revision
            status.highestServed = highest
            status.epochStart = epochStart
            status.priority = ha.priority.rawValue
            status.schemaVersion = ha.schemaVersion
            status.reunionWinner = machine.reunionWinner
            status.reunionForkID = machine.reunionForkID
            status.witnessLost = machine.witnessLost
            status.serving = machine.servesClients
            status.handoverTo = machine.handoverTo
            status.witness = ha.witness == nil ? "" : (witnessReachable ? "reachable" : "unreachable")
            status.lastWriteUnixMilliseconds = lastWrite
            status.pausedUntilUnixMilliseconds = pause.untilUnixMilliseconds
            status.pauseSetUnixMilliseconds = pause.setUnixMilliseconds
            status.paused = pause.inForce(atUnixMilliseconds: PeerService.wallClock())
            return status.lagRevisions
        }
        metrics.observe(
            role: machine.role, term: machine.term, lagRevisions: lag,
            paused: pause.inForce(atUnixMilliseconds: PeerService.wallClock()))
        let leaderID = machine.leader.isEmpty ? 0 : HAIdentity.memberID(machine.leader)
        identity.cluster.update(term: machine.term, leaderID: leaderID)
    }
}
