import KineCore
import KineHA
import KinePostgres
import KineProto
import KineSQL
import KineStore
import Logging

/// One probe round (the local database, the peer on both channels, the witness, all within the
/// probe timeout), and what the Status RPC, etcd's Status and MemberList report from it.
extension HAController {
    /// The parts of a round, as its probes finish.
    private enum ProbePart: Sendable {
        case local(LocalProbe?)
        case peer(PeerAnswer)
        case peerDatabase(PeerDatabaseProbe?)
        case witness(Bool?)
        case deadline
    }

    func observe(_ loop: inout LoopState) async -> HAObservation {
        let round = await probe(loop)
        let context = HAProbeContext(
            node: node, schemaVersion: ha.schemaVersion, peerAddress: "\(ha.peerHost):\(ha.peerPort)", peerDatabase: "\(peerDatabase)",
            probeTimeout: ha.timing.probeTimeout, role: loop.machine.role, pause: commands.pause, wallClock: PeerService.wallClock())
        let reading = HAProbeReading(round, context: context)
        if let name = reading.peerName { learnPeerName(name, &loop) }
        if let pause = reading.adoptedPause { commands.adopt(pause) }
        record(reading, &loop)
        return reading.observation
    }

    /// Runs the four probes side by side; whatever has not answered when the probe timeout
    /// passes counts as silent (its call is cancelled, and the round waits only for that).
    private func probe(_ loop: LoopState) async -> HAProbeRound {
        let timeout = ha.timing.probeTimeout
        let request = HAStatusRequest(fromNode: node, term: loop.machine.term)
        let localQuery = HASQL.localProbe(subscription: subscription, followerApplication: HANames.application(loop.peerName ?? ""))
        let peerQuery = HASQL.peerProbe(slot: subscription)
        let (admin, peerSQL, peerRPC, witness) = (admin, peerSQL, peerRPC, ha.witness)
        let started = ContinuousClock.now
        var round = HAProbeRound(
            now: now, local: nil, peer: .timedOut, peerDatabase: nil, witness: witness == nil ? nil : false,
            epochStart: stores.epoch?.startRevision ?? 0)
        await withTaskGroup(of: ProbePart.self) { group in
            // A database that fails to answer is one that did not answer (nil), the observation's
            // input; the reason is in PostgreSQL's own log.
            // try?: a failed local probe is a local database down this round.
            group.addTask { .local((try? await admin.probe(localQuery)) ?? nil) }
            group.addTask { .peer(await peerRPC.status(request)) }
            // try?: a failed channel-B probe is a silent peer database this round.
            group.addTask { .peerDatabase((try? await peerSQL.probe(peerQuery)) ?? nil) }
            if let witness {
                group.addTask { .witness(await TCPProbe.connects(host: witness.host, port: witness.port, timeout: timeout)) }
            }
            group.addTask {
                // try?: cancelled once every probe answered, which is the early end wanted.
                try? await Task.sleep(for: timeout)
                // A sleep that overran by a whole timeout means this process did not run (frozen,
                // SIGSTOP, swapped out): the probes did not get their time, and a database that
                // answers must not be reported down for it. They get one more timeout.
                // try?: cancelled once every probe answered, as above.
                if ContinuousClock.now - started >= timeout * 2 { try? await Task.sleep(for: timeout) }
                return .deadline
            }
            var pending = witness == nil ? 3 : 4
            for await part in group {
                switch part {
                case .local(let answer): round.local = answer
                case .peer(let answer): round.peer = answer
                case .peerDatabase(let answer): round.peerDatabase = answer
                case .witness(let reached): round.witness = reached
                case .deadline:
                    group.cancelAll()
                    continue
                }
                pending -= 1
                if pending == 0 { group.cancelAll() }
            }
        }
        return round
    }

    /// Records the peer's name the first time it answers (or when it changed).
    private func learnPeerName(_ name: String, _ loop: inout LoopState) {
        guard loop.peerName != name else { return }
        loop.peerName = name
        let me = identity.cluster.members.first { $0.name == node }
        identity.cluster.setMembers(
            (me.map { [$0] } ?? []) + [ServerIdentity.member(name, peerURL: "http://\(ha.peerHost):\(ha.peerPort)", clientURL: nil)])
    }

    /// This node's wall clock as the reunion's `newest` rule reads it (tests inject skew).
    var reunionClock: Int64 {
        PeerService.wallClock() + ha.clockOffset.wholeMilliseconds
    }

    /// Keeps what the Status RPC reports, logs a changed problem once, and feeds the ledger.
    private func record(_ reading: HAProbeReading, _ loop: inout LoopState) {
        let local = reading.observation.local
        let served = stores.epoch?.store.watchHub.revision ?? 0
        loop.ledger.record(
            served: served, epochStart: stores.epoch?.startRevision ?? 0, leading: loop.machine.role.isLeading, clock: reunionClock)
        var view = HAPeerView()
        view.node = loop.peerName ?? ""
        view.sqlOK = reading.observation.peer.sqlOK
        view.rpcOK = reading.observation.peer.answer != .silent
        if let status = reading.observation.peer.status {
            view.role = status.role.rawValue
            view.term = status.term
        }
        view.lastProbeUnixMilliseconds = PeerService.wallClock()
        let dead = loop.machine.peerDead(at: reading.observation.now)
        view.failedRounds = UInt32(clamping: dead ? Int(ha.timing.liveness / ha.timing.probeInterval) : 0)
        let problem = reading.problem
        view.error = problem
        board.update { status in
            status.postgresUp = local.postgresUp
            status.subscription = local.copy.rawValue
            status.localMaxID = local.maxID
            status.hasData = local.hasData
            status.lagRevisions = reading.lagRevisions
            status.peer = view
        }
        if loop.lastProblem != problem {
            if problem.isEmpty {
                logger.info("HA probe: peer answers on both channels")
            } else {
                logger.warning("HA probe: \(problem)")
            }
            loop.lastProblem = problem
        }
    }

    /// Persists what grew this round (highest served, newest write, the pause). Awaited: R2
    /// depends on the highest served revision, so a failed write is logged and retried on the
    /// next round (the ledger and the pause stay unpersisted until one succeeds).
    func persistBookkeeping(_ loop: inout LoopState, postgresUp: Bool) async {
        guard postgresUp else { return }
        if let update = loop.ledger.unpersisted {
            var statements: [SQLStatement] = []
            if let highest = update.highestServed { statements.append(HASQL.raiseHighestServed(highest)) }
            if let lastWrite = update.lastWriteUnixMilliseconds { statements.append(HASQL.raiseLastWrite(lastWrite)) }
            do {
                _ = try await admin.pipeline(statements)
                loop.ledger.persisted(update)
            } catch {
                logger.warning(
                    "HA: cannot record the highest revision served yet; trying again next round", metadata: ["error": "\(error)"])
            }
        }
        if let pause = commands.unpersistedPause {
            do {
                _ = try await admin.pipeline([
                    HASQL.writePause(untilUnixMilliseconds: pause.untilUnixMilliseconds, setUnixMilliseconds: pause.setUnixMilliseconds)
                ])
                commands.pausePersisted(pause)
                logger.notice(
                    pause.untilUnixMilliseconds > 0
                        ? "HA: maintenance pause until \(pause.untilUnixMilliseconds) (Unix ms)" : "HA: maintenance pause ended")
            } catch {
                logger.warning("HA: cannot record the maintenance pause yet; trying again next round", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Role, term and leader as the Status RPC, etcd's Status and MemberList report them.
    func publish(_ loop: LoopState) {
        let machine = loop.machine
        let revision = stores.epoch?.store.watchHub.revision ?? 0
        let epochStart = stores.epoch?.startRevision ?? 0
        let pause = commands.pause
        let paused = pause.inForce(atUnixMilliseconds: PeerService.wallClock())
        let lag = board.update { status -> Int64 in
            status.node = node
            status.term = machine.term
            status.role = machine.role.rawValue
            status.leader = machine.leader ?? ""
            status.replication = ha.replication.rawValue
            status.syncActive = machine.synchronous
            status.maxRevision = revision
            status.highestServed = max(loop.ledger.highestServed, revision)
            status.epochStart = epochStart
            status.priority = ha.priority.rawValue
            status.schemaVersion = ha.schemaVersion
            status.reunionWinner = machine.verdict?.winner ?? ""
            status.reunionForkID = machine.verdict?.forkID ?? 0
            status.witnessLost = machine.witnessLost
            status.serving = machine.servesClients
            status.handoverTo = machine.handingOverTo ?? ""
            status.witness = ha.witness == nil ? "" : (machine.lastWitness == true ? "reachable" : "unreachable")
            status.lastWriteUnixMilliseconds = loop.ledger.lastWriteUnixMilliseconds
            status.pausedUntilUnixMilliseconds = pause.untilUnixMilliseconds
            status.pauseSetUnixMilliseconds = pause.setUnixMilliseconds
            status.paused = paused
            return status.lagRevisions
        }
        metrics.observe(role: machine.role, term: machine.term, lagRevisions: lag, paused: paused)
        identity.cluster.update(term: machine.term, leaderID: machine.leader.map(HAIdentity.memberID) ?? 0)
    }
}
