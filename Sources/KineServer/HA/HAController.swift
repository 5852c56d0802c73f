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

/// Runs one node of a two-node pair: probes the peer every interval, feeds what it saw to the
/// role machine (`HARoleMachine`), carries out the actions it returns (lead, promote, follow,
/// resync, synchronous replication on or off) and serves the peer service on the HA port.
/// The SQL of every step is in `HASQL`; docs/ha.md describes the whole protocol.
final class HAController: Sendable {
    private struct Shared: Sendable {
        var instance: StoreInstance?
        var stopped = false
        var highestServed: Int64 = 0
        var persistedHighest: Int64 = 0
        var lastProblem = ""
        /// The peer's node name, learned from its first answer (slot and standby names use it).
        var peerName = ""
        var wake: CheckedContinuation<Void, Never>?
    }

    private let ha: HAConfiguration
    private let configuration: KineConfiguration
    private let stores: StoreHandle
    private let identity: ServerIdentity
    private let logger: Logger
    private let localDatabase: PostgresConfiguration
    private let peerDatabase: PostgresConfiguration
    /// This node's PostgreSQL for HA bookkeeping: exempt from the follower's read-only fence,
    /// and never waiting for a synchronous standby (nothing it writes is replicated).
    private let admin: PostgresClient
    /// Channel B, and the statements a follower runs on its leader (its own slot there).
    private let peerSQL: PostgresClient
    private let peerRPC: PeerRPC
    private let peerServer: GRPCServer
    private let start = ContinuousClock.now
    private let shared = Mutex(Shared())
    /// What the Status RPC answers.
    private let board: HAStatusBoard
    private let initial: (role: HARole?, term: UInt64, leader: String, highestServed: Int64)

    private init(
        ha: HAConfiguration, configuration: KineConfiguration, stores: StoreHandle, identity: ServerIdentity, logger: Logger,
        local: PostgresConfiguration, peer: PostgresConfiguration, admin: PostgresClient, peerSQL: PostgresClient,
        initial: (role: HARole?, term: UInt64, leader: String, highestServed: Int64)
    ) {
        self.ha = ha
        self.configuration = configuration
        self.stores = stores
        self.identity = identity
        self.logger = logger
        localDatabase = local
        peerDatabase = peer
        self.admin = admin
        self.peerSQL = peerSQL
        self.initial = initial
        peerRPC = PeerRPC(host: ha.peerHost, port: ha.peerPort, timeout: ha.timing.probeTimeout)
        let board = HAStatusBoard(stores: stores)
        self.board = board
        peerServer = GRPCServer(
            configuration: GRPCServerConfiguration(target: ha.listen), router: EtcdRouter([PeerService(board: board).methods()]),
            logger: logger)
        shared.withLock { $0.highestServed = initial.highestServed }
    }

    private var node: String { ha.nodeName }
    private var subscription: String { HANames.subscription(node) }
    private var peerName: String { shared.withLock { $0.peerName } }

    /// Records the peer's name the first time it answers (or when it changed).
    private func learnPeerName(_ name: String) {
        let changed = shared.withLock { state in
            defer { state.peerName = name }
            return state.peerName != name
        }
        guard changed else { return }
        let me = identity.cluster.members.first { $0.name == node }
        identity.cluster.setMembers((me.map { [$0] } ?? []) + [ServerIdentity.member(name, peerURL: "http://\(ha.peerHost):\(ha.peerPort)", clientURL: nil)])
    }

    // MARK: Start

    /// Checks the local PostgreSQL (a bad setup fails here, naming the problem), prepares the
    /// tables and the publication, reads the persisted role and term, and opens the HA port.
    static func start(
        configuration: KineConfiguration, ha: HAConfiguration, local: PostgresConfiguration, stores: StoreHandle,
        identity: ServerIdentity, logger: Logger
    ) async throws -> HAController {
        let peer = try PostgresConfiguration(endpoint: ha.peerEndpoint)
        var adminTarget = local
        adminTarget.parameters["options"] = "-c default_transaction_read_only=off -c synchronous_commit=local"
        adminTarget.parameters["application_name"] = "kine-ha-\(HANames.sanitized(ha.nodeName))"
        _ = await PostgresClient.ensureDatabaseExists(adminTarget, logger: logger)
        var adminOptions = PostgresClient.Options(poolSize: 2)
        adminOptions.queueTimeout = .seconds(5)
        let admin = try await PostgresClient.connect(configuration: adminTarget, options: adminOptions, logger: logger)
        do {
            try await checkSetup(admin, local: local)
            try await KineStore.prepareSchema(client: admin, migrationLevel: configuration.schemaMigrationLevel, logger: logger)
            for statement in HASQL.schema { _ = try await admin.pipeline([SQLStatement(statement)]) }
            let publications = try await admin.pipeline([SQLStatement(HASQL.publicationExists)])[0].rows.first?.int64(0) ?? 0
            if publications == 0 { _ = try await admin.pipeline([SQLStatement(HASQL.createPublication)]) }
            let row = try await admin.pipeline([SQLStatement(HASQL.readLocalState)])[0].rows.first
            let initial = (
                role: row.flatMap { HARole(rawValue: $0.text(0)) }, term: UInt64(max(row?.int64(1) ?? 0, 0)),
                leader: row?.text(2) ?? "", highestServed: row?.int64(4) ?? 0)
            var peerTarget = peer
            peerTarget.parameters["connect_timeout"] = "2"
            var peerOptions = PostgresClient.Options(poolSize: 1)
            peerOptions.queueTimeout = ha.timing.probeTimeout
            let peerSQL = PostgresClient(configuration: peerTarget, options: peerOptions, logger: logger)
            let controller = HAController(
                ha: ha, configuration: configuration, stores: stores, identity: identity, logger: logger, local: local, peer: peer,
                admin: admin, peerSQL: peerSQL, initial: initial)
            let bound = try await controller.peerServer.start()
            logger.info("HA peer port ready", metadata: [
                "kine.ha.listen": "\(bound)", "kine.ha.node": "\(ha.nodeName)", "kine.ha.peer": "\(ha.peerHost):\(ha.peerPort)",
                "kine.ha.lastRole": "\(initial.role?.rawValue ?? "none")", "kine.ha.term": "\(initial.term)",
            ])
            return controller
        } catch {
            await admin.shutdown()
            throw error
        }
    }

    /// Refuses a PostgreSQL that cannot take part in a pair, with what to change.
    private static func checkSetup(_ admin: PostgresClient, local: PostgresConfiguration) async throws {
        guard let row = try await admin.pipeline([SQLStatement(HASQL.setupCheck)])[0].rows.first else { return }
        let walLevel = row.text(0)
        if walLevel != "logical" {
            throw ConfigurationError(
                "PostgreSQL at \(local) has wal_level = \(walLevel); two-node HA needs wal_level = logical "
                    + "(ALTER SYSTEM SET wal_level = logical and restart PostgreSQL; scripts/ha-postgres.sh prepares a server)")
        }
        if !row.bool(1) {
            throw ConfigurationError(
                "PostgreSQL role \(row.text(3)) at \(local) is not a superuser; two-node HA creates and drops logical-replication "
                    + "subscriptions, which PostgreSQL 15 allows only to superusers (docs/ha.md, Roles)")
        }
    }

    // MARK: Loop

    func run() async {
        var machine = HARoleMachine(
            node: node, priority: ha.priority, mode: ha.replication, timing: ha.timing, lastRole: initial.role, term: initial.term,
            lastLeader: initial.leader)
        publish(machine)
        while !isStopped {
            let observation = await observe(machine)
            let actions = machine.step(observation)
            for action in actions {
                logger.info("HA: \(Self.describe(action))", metadata: ["kine.ha.role": "\(machine.role.rawValue)", "kine.ha.term": "\(machine.term)"])
                do {
                    try await perform(action, machine: machine)
                    if case .resync = action { machine.resyncStarted() }
                } catch {
                    logger.error("HA: \(Self.describe(action)) failed; will decide again", metadata: ["kine.error": "\(error)"])
                    machine.failed(now: now)
                    if case .promote = action { stores.withdraw() }
                    break
                }
            }
            await ensureServing(machine.role)
            publish(machine)
            await sleep(ha.timing.probeInterval)
        }
    }

    /// A node in a serving role with nothing installed (an action failed half-way) serves again
    /// from where its role says.
    private func ensureServing(_ role: HARole) async {
        guard stores.epoch == nil, role.isLeading || role.isFollowing else { return }
        do {
            if role.isLeading { try await serveLocal(startRevision: nil) } else { try await serveRouted() }
        } catch {
            logger.warning("HA: cannot serve as \(role.rawValue) yet", metadata: ["kine.error": "\(error)"])
        }
    }

    func stop() {
        let wake = shared.withLock { state in
            state.stopped = true
            defer { state.wake = nil }
            return state.wake
        }
        wake?.resume()
    }

    func shutdown() async {
        stop()
        await peerServer.shutdown()
        let instance = shared.withLock { state in
            defer { state.instance = nil }
            return state.instance
        }
        stores.withdraw(reason: .serverStopped, endStreams: true)
        await instance?.shutdown()
        peerRPC.close()
        await peerSQL.shutdown()
        await admin.shutdown()
    }

    private var isStopped: Bool { shared.withLock { $0.stopped } }
    private var now: Duration { ContinuousClock.now - start }

    private func sleep(_ interval: Duration) async {
        let task = Task { [self] in
            try? await Task.sleep(for: interval)
            let wake = shared.withLock { state in
                defer { state.wake = nil }
                return state.wake
            }
            wake?.resume()
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let stopped = shared.withLock { state in
                if state.stopped { return true }
                state.wake = continuation
                return false
            }
            if stopped { continuation.resume() }
        }
        task.cancel()
    }

    // MARK: Observation

    private func observe(_ machine: HARoleMachine) async -> HAObservation {
        let timeout = ha.timing.probeTimeout
        let request = HAStatusRequest(fromNode: node, term: machine.term)
        let admin = self.admin
        let peerSQL = self.peerSQL
        let localProbe = HASQL.localProbe(subscription: subscription, followerApplication: HANames.application(peerName))
        let peerProbe = HASQL.peerProbe(slot: subscription)
        async let localRows = withDeadline(timeout) { try? await admin.pipeline([localProbe])[0].rows.first }
        async let peerAnswer = withDeadline(timeout) { [peerRPC] in await peerRPC.status(request) }
        async let peerRows = withDeadline(timeout) { try? await peerSQL.pipeline([peerProbe])[0].rows.first }
        let (localRow, answer, peerRow) = await (localRows ?? nil, peerAnswer, peerRows ?? nil)

        var local = HAObservation.Local(postgresUp: localRow != nil)
        var localMaxID: Int64 = 0
        var hasData = false
        if let localRow {
            localMaxID = localRow.int64(0)
            local.copyComplete = !localRow.isNull(1) && localRow.bool(2)
            if localRow.isNull(1) {
                local.copy = .none
            } else if !localRow.bool(1) {
                local.copy = .disabled
            } else {
                local.copy = local.copyComplete ? .ready : .syncing
            }
            local.followerStreaming = localRow.bool(3)
            local.subscribedTerm = localRow.isNull(4) ? 0 : UInt64(max(localRow.int64(4), 0))
            hasData = localRow.bool(5)
            local.hasData = hasData
        }

        var peer = HAObservation.Peer(sqlOK: peerRow != nil)
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
            }
        case .failure(let error)?:
            problem = "\(error)"
        case nil:
            problem = "peer HA port \(ha.peerHost):\(ha.peerPort) did not answer within \(timeout)"
        }
        if peerRow == nil {
            problem += (problem.isEmpty ? "" : "; ") + "peer PostgreSQL \(peerDatabase) did not answer within \(timeout)"
        }
        if machine.role.isFollowing, local.copy == .ready || local.copy == .syncing, let peerRow {
            let slot = peerRow.isNull(1) ? "missing" : peerRow.text(1)
            peer.slotLost = slot == "missing" || slot == "lost"
        }
        let observation = HAObservation(now: now, local: local, peer: peer)
        view.failedRounds = UInt32(clamping: machine.peerDead(at: observation.now) ? Int(ha.timing.liveness / ha.timing.probeInterval) : 0)
        view.error = problem
        let leaderMax = peerRow?.int64(0) ?? 0
        recordRound(local: local, localMaxID: localMaxID, hasData: hasData, view: view, problem: problem,
                    lag: machine.role.isFollowing ? max(leaderMax - localMaxID, 0) : 0)
        return observation
    }

    /// Keeps what the Status RPC reports, logs a changed problem once, and persists the highest
    /// revision served when it grew.
    private func recordRound(local: HAObservation.Local, localMaxID: Int64, hasData: Bool, view: HAPeerView, problem: String, lag: Int64) {
        let served = stores.epoch?.store.watchHub.revision ?? 0
        board.update { status in
            status.postgresUp = local.postgresUp
            status.subscription = local.copy.rawValue
            status.localMaxID = localMaxID
            status.hasData = hasData
            status.lagRevisions = lag
            status.peer = view
        }
        let (changedProblem, persist) = shared.withLock { state -> (Bool, Int64?) in
            state.highestServed = max(state.highestServed, served)
            let changed = state.lastProblem != problem
            state.lastProblem = problem
            let persist = state.highestServed > state.persistedHighest && local.postgresUp ? state.highestServed : nil
            if let persist { state.persistedHighest = persist }
            return (changed, persist)
        }
        if changedProblem && !problem.isEmpty { logger.warning("HA probe: \(problem)") }
        if changedProblem && problem.isEmpty { logger.info("HA probe: peer answers on both channels") }
        if let persist { Task { [admin] in _ = try? await admin.pipeline([HASQL.raiseHighestServed(persist)]) } }
    }

    /// Role, term and leader as the Status RPC, etcd's Status and MemberList report them.
    private func publish(_ machine: HARoleMachine) {
        let revision = stores.epoch?.store.watchHub.revision ?? 0
        let epochStart = stores.epoch?.startRevision ?? 0
        let highest = shared.withLock { max($0.highestServed, revision) }
        board.update { status in
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
        }
        let leaderID = machine.leader.isEmpty ? 0 : HAIdentity.memberID(machine.leader)
        identity.cluster.update(term: machine.term, leaderID: leaderID)
    }

    // MARK: Actions

    private func perform(_ action: HAAction, machine: HARoleMachine) async throws {
        switch action {
        case .lead(let term, _):
            try await persist(role: .leaderAlone, term: term, leader: node)
            try await detachOwnSubscription()
            try await openForWrites()
            _ = try await admin.pipeline([HASQL.claimLeadership(term: term, node: node)])
            try await serveLocal(startRevision: nil)
        case .promote(let term, let peerMaxRevision, _):
            stores.withdraw()
            try await persist(role: .promoting, term: term, leader: node)
            try await detachOwnSubscription()
            let localMax = try await admin.pipeline([SQLStatement(HASQL.localMaxID)])[0].rows.first?.int64(0) ?? 0
            let served = shared.withLock { $0.highestServed }
            let target = max(localMax, served, peerMaxRevision) + ha.revisionBump
            _ = try await admin.pipeline(HASQL.bump(to: target, term: term, node: node, forkID: localMax, lockKey: HAIdentity.writeLockKey))
            try await openForWrites()
            try await serveLocal(startRevision: target)
            try await persist(role: .leaderAlone, term: term, leader: node)
            _ = try? await admin.pipeline([HASQL.dropInactiveSlot(HANames.subscription(peerName))])
            logger.notice("HA: promoted", metadata: [
                "kine.ha.term": "\(term)", "kine.ha.epochStart": "\(target)", "kine.ha.localMaxID": "\(localMax)",
                "kine.ha.highestServed": "\(served)", "kine.ha.peerMaxRevision": "\(peerMaxRevision)",
            ])
        case .follow(let leader, let term, _):
            do {
                try await persist(role: .followerSyncing, term: term, leader: leader)
            } catch {
                logger.warning("HA: cannot persist the follower role yet (local PostgreSQL down?); routing anyway", metadata: ["kine.error": "\(error)"])
            }
            try await serveRouted()
        case .resync(let reason):
            try await resync(leaderTerm: machine.term, reason: reason)
        case .resumeCopy:
            try await adminEach([HASQL.enableSubscription(subscription)])
        case .setSynchronous(let on, _):
            try await adminEach([HASQL.synchronousStandbys(on ? HANames.application(peerName) : nil), HASQL.reload])
        case .persist:
            try await persist(role: machine.role, term: machine.term, leader: machine.leader)
        }
    }

    private func persist(role: HARole, term: UInt64, leader: String) async throws {
        _ = try await admin.pipeline([HASQL.writeLocalState(node: node, role: role.rawValue, term: term, leader: leader, schemaVersion: ha.schemaVersion)])
    }

    /// One pipeline call per statement: ALTER SYSTEM and (DROP/CREATE) SUBSCRIPTION refuse to run
    /// in a transaction block, which several statements of one call would form.
    private func adminEach(_ statements: [String]) async throws {
        for statement in statements { _ = try await admin.pipeline([SQLStatement(statement)]) }
    }

    private func openForWrites() async throws {
        try await adminEach([HASQL.unfence, HASQL.synchronousStandbys(nil), HASQL.reload])
    }

    private func detachOwnSubscription() async throws {
        let exists = try await admin.pipeline([HASQL.subscriptionExists(subscription)])[0].rows.first?.int64(0) ?? 0
        if exists > 0 { try await adminEach(HASQL.detachSubscription(subscription)) }
    }

    /// Leader: serve from the local database. `startRevision` is the promotion's bump, else the
    /// table's compacted revision.
    private func serveLocal(startRevision: Int64?) async throws {
        let instance = try await StoreInstance.open(localDatabase, configuration: configuration, logger: logger, connectTimeout: .seconds(10))
        let start: Int64
        if let startRevision {
            start = startRevision
        } else {
            start = try await instance.store.revisions().compact
        }
        install(instance, startRevision: start)
    }

    /// Follower: every request goes to the leader's database, as a second kine process there.
    private func serveRouted() async throws {
        let instance = try await StoreInstance.open(
            peerDatabase, configuration: configuration, logger: logger, connectTimeout: ha.timing.liveness)
        let start = try await instance.store.revisions().compact
        install(instance, startRevision: start)
    }

    private func install(_ instance: StoreInstance, startRevision: Int64) {
        let previous = shared.withLock { state in
            defer { state.instance = instance }
            return state.instance
        }
        stores.install(instance.store, startRevision: startRevision)
        logger.info("HA: serving from \(instance.database)", metadata: ["kine.ha.epochStart": "\(startRevision)"])
        // The old database may be dead: its pool's shutdown must not hold up the new epoch.
        if let previous { Task { await previous.shutdown() } }
    }

    /// Re-makes the local copy: fence, end waiting commits, detach, clean stale slots on both
    /// sides, save the rows the leader does not have, empty the copy, subscribe with `copy_data`.
    private func resync(leaderTerm: UInt64, reason: String) async throws {
        // Fenced first (no new local transaction), then no waiting for a standby: a node that
        // led kept `synchronous_standby_names`, and its waiting commits are ended, not released.
        try await adminEach([HASQL.fence, HASQL.reload, HASQL.terminateStoreSessions, HASQL.synchronousStandbys(nil), HASQL.reload])
        try await detachOwnSubscription()
        _ = try await peerSQL.pipeline([HASQL.dropInactiveSlot(subscription)])
        _ = try? await admin.pipeline([HASQL.dropInactiveSlot(HANames.subscription(peerName))])
        let localTerm = try await admin.pipeline([SQLStatement(HASQL.localEpoch)])[0].rows.first.map { UInt64(max($0.int64(0), 0)) } ?? 0
        if localTerm < leaderTerm {
            let fork = try await peerSQL.pipeline([SQLStatement(HASQL.peerEpoch)])[0].rows.first?.int64(3) ?? 0
            let saved = try await admin.pipeline([HASQL.saveRowsAbove(fork, leaderTerm: leaderTerm, reason: reason)])[0].affectedRows
            if saved > 0 {
                logger.warning("HA: saved rows the leader does not have before resyncing (table kine_ha_saved)", metadata: [
                    "kine.ha.savedRows": "\(saved)", "kine.ha.forkID": "\(fork)", "kine.ha.localTerm": "\(localTerm)",
                    "kine.ha.leaderTerm": "\(leaderTerm)",
                ])
            }
        }
        try await adminEach([HASQL.emptyCopy])
        let connection = peerDatabase.conninfo(overrides: [
            "application_name": HANames.application(node), "connect_timeout": "5",
            "keepalives_idle": "5", "keepalives_interval": "2", "keepalives_count": "3",
        ])
        try await adminEach([HASQL.createSubscription(subscription, connection: connection, slot: subscription)])
        _ = try await admin.pipeline([HASQL.setSubscribedTerm(leaderTerm)])
        logger.info("HA: resync started (copying the leader's tables)", metadata: ["kine.ha.reason": "\(reason)"])
    }

    private static func describe(_ action: HAAction) -> String {
        switch action {
        case .lead(let term, let reason): return "leading at term \(term): \(reason)"
        case .promote(let term, _, let reason): return "promoting to term \(term): \(reason)"
        case .follow(let leader, let term, let reason): return "following \(leader) at term \(term): \(reason)"
        case .resync(let reason): return "resyncing the local copy: \(reason)"
        case .resumeCopy(let reason): return "resuming the local copy: \(reason)"
        case .setSynchronous(let on, let reason): return "synchronous replication \(on ? "on" : "off"): \(reason)"
        case .persist(let reason): return "role change: \(reason)"
        }
    }
}
