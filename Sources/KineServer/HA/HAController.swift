import KineCore
import KineHA
import KineHTTP2
import KinePostgres
import KineSQL
import KineStore
import KineSync
import Logging

/// Runs one node of a two-node pair: every interval it observes (probes the local database and
/// the peer), steps the role machine (`HARoleMachine`), which holds every rule, and performs the
/// actions it returns (lead, promote, follow, resync, synchronous replication on or off). It
/// also serves the peer service on the HA port. The SQL of every step is in `HASQL`;
/// docs/ha.md describes the whole protocol.
final class HAController: Sendable {
    let ha: HAConfiguration
    let configuration: KineConfiguration
    let stores: StoreHandle
    let identity: ServerIdentity
    let logger: Logger
    let localDatabase: PostgresConfiguration
    let peerDatabase: PostgresConfiguration
    /// This node's PostgreSQL for HA bookkeeping: exempt from the follower's read-only fence,
    /// and never waiting for a synchronous standby (nothing it writes is replicated).
    let admin: PostgresClient
    /// Channel B, and the statements a follower runs on its leader (its own slot there).
    let peerSQL: PostgresClient
    let peerRPC: PeerRPC
    let peerServer: GRPCServer
    /// What the Status RPC answers.
    let board: HAStatusBoard
    /// Pause, resume and handover requests from the HA port.
    let commands: HACommands
    let metrics: HAMetrics
    /// Closes what the loop drops (old store instances, peer connections); `run` owns it.
    let cleanup = CleanupQueue()
    private let initial: HALocalRecord
    private let start = ContinuousClock.now
    private let stopSignal = StopSignal()

    /// What only the loop reads and changes: the machine and what the controller keeps besides it.
    struct LoopState {
        var machine: HARoleMachine
        var ledger: ServedLedger
        /// The peer's node name, learned from its first answer (slot and standby names use it).
        var peerName: String?
        /// The peer problem last logged (a changed one is logged once).
        var lastProblem = ""
        /// The store instance serving now.
        var instance: StoreInstance?
    }

    private init(
        ha: HAConfiguration, configuration: KineConfiguration, stores: StoreHandle, identity: ServerIdentity, logger: Logger,
        local: PostgresConfiguration, peer: PostgresConfiguration, admin: PostgresClient, peerSQL: PostgresClient,
        initial: HALocalRecord, metrics: HAMetrics
    ) {
        self.metrics = metrics
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
        peerRPC = PeerRPC(host: ha.peerHost, port: ha.peerPort, timeout: ha.timing.probeTimeout, tls: ha.peerTLS, cleanup: cleanup)
        let board = HAStatusBoard(stores: stores)
        self.board = board
        let commands = HACommands(pause: initial.pause)
        self.commands = commands
        let service = PeerService(board: board, commands: commands, defaultHandoverTimeout: ha.handoverTimeout)
        peerServer = GRPCServer(
            configuration: GRPCServerConfiguration(target: ha.listen, tls: ha.peerTLS), router: EtcdRouter([service.methods()]),
            logger: logger)
    }

    var node: String { ha.nodeName }
    var subscription: String { HANames.subscription(node) }

    // MARK: Start

    /// Checks the local PostgreSQL (a bad setup fails here, naming the problem), prepares the
    /// tables and the publication, reads the persisted role and term, and opens the HA port.
    static func start(
        configuration: KineConfiguration, ha: HAConfiguration, local: PostgresConfiguration, stores: StoreHandle,
        identity: ServerIdentity, metrics: HAMetrics = HAMetrics(), logger: Logger
    ) async throws -> HAController {
        var peer = try PostgresConfiguration(endpoint: ha.peerEndpoint)
        // On a silently dead link a query waits for TCP's retransmissions (minutes) unless
        // unacknowledged data fails the connection sooner: routed requests and probes give up
        // within liveness instead.
        if peer.parameters["tcp_user_timeout"] == nil {
            peer.parameters["tcp_user_timeout"] = "\(ha.timing.liveness.wholeMilliseconds)"
        }
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
            if try await admin.run(HASQL.publicationExists) == 0 {
                _ = try await admin.pipeline([SQLStatement(HASQL.createPublication)])
            } else {
                for table in try await admin.run(HASQL.unpublishedTables) {
                    _ = try await admin.pipeline([SQLStatement(HASQL.publish(table))])
                }
            }
            let initial = try await admin.run(HASQL.readLocalState)
            var peerTarget = peer
            peerTarget.parameters["connect_timeout"] = "2"
            // What a resync saves on the leader must not wait for a standby the leader may still list.
            peerTarget.parameters["options"] = "-c synchronous_commit=local"
            var peerOptions = PostgresClient.Options(poolSize: 1)
            peerOptions.queueTimeout = ha.timing.probeTimeout
            let peerSQL = PostgresClient(configuration: peerTarget, options: peerOptions, logger: logger)
            let controller = HAController(
                ha: ha, configuration: configuration, stores: stores, identity: identity, logger: logger, local: local, peer: peer,
                admin: admin, peerSQL: peerSQL, initial: initial, metrics: metrics)
            let bound = try await controller.peerServer.start()
            logger.info(
                "HA peer port ready",
                metadata: [
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
    private static func checkSetup(_ admin: PostgresClient, local: PostgresConfiguration) async throws(HASetupError) {
        let setup: HASetup?
        do {
            setup = try await admin.run(HASQL.setupCheck)
        } catch {
            throw .unreadable(database: "\(local)", error)
        }
        guard let setup else { return }
        if setup.walLevel != "logical" { throw .walLevel(database: "\(local)", setup.walLevel) }
        if !setup.superuser { throw .notSuperuser(database: "\(local)", user: setup.user) }
    }

    // MARK: Loop

    /// Probes, decides and acts every interval until `stop()`; then stops serving and closes
    /// everything it opened, waiting for all of it.
    func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.cleanup.run() }
            var loop = LoopState(
                machine: HARoleMachine(
                    node: node, priority: ha.priority, mode: ha.replication, timing: ha.timing, lastRole: initial.role,
                    term: initial.term, lastLeader: initial.leader),
                ledger: ServedLedger(highestServed: initial.highestServed, lastWriteUnixMilliseconds: initial.lastWriteUnixMilliseconds))
            publish(loop)
            while !isStopped {
                await round(&loop)
                await pause(for: ha.timing.probeInterval)
            }
            commands.refuseWaitingHandover()
            await peerServer.shutdown()
            stores.withdraw(reason: .serverStopped, endStreams: true)
            await loop.instance?.shutdown()
            await peerRPC.close()
            cleanup.finish()
        }
        await peerSQL.shutdown()
        await admin.shutdown()
    }

    /// One round: observe, step the machine (and take a waiting handover request), perform.
    private func round(_ loop: inout LoopState) async {
        let observation = await observe(&loop)
        var actions = loop.machine.step(observation)
        var handover: HACommands.HandoverRequest?
        if let request = commands.takeHandover() {
            do throws(HandoverRefused) {
                actions += try loop.machine.requestHandover(now: now, timeout: request.timeout)
                handover = request
            } catch {
                request.reply.complete(.failure(.refused(error)))
            }
        }
        await carryOut(actions, &loop)
        await ensureServing(&loop)
        await persistBookkeeping(&loop, postgresUp: observation.local.postgresUp)
        publish(loop)
        // Answered only now: a caller polling Status right after the answer must already see
        // the handover, and a step-down that failed (the round rolled back) is no handover.
        handover?.reply.complete(loop.machine.handingOverTo == nil ? .failure(.stepDownFailed) : .success(()))
    }

    /// Performs the actions in order; a reunion's decision brings further actions. On the first
    /// failure the machine goes back to where the round started.
    private func carryOut(_ actions: [HAAction], _ loop: inout LoopState) async {
        var queue = actions[...]
        while let action = queue.popFirst() {
            logger.info(
                "HA: \(action)",
                metadata: ["kine.ha.role": "\(loop.machine.role.rawValue)", "kine.ha.term": "\(loop.machine.term)"])
            do {
                if case .decideReunion(let peer) = action {
                    let (decision, fork) = try await decideReunion(with: peer, loop)
                    metrics.count(action)
                    logger.notice(
                        "HA: reunion decided",
                        metadata: [
                            "kine.ha.winner": "\(decision.winner)", "kine.ha.loser": "\(decision.loser)",
                            "kine.ha.rule": "\(decision.rule.rawValue)", "kine.ha.forkID": "\(fork)",
                            "kine.ha.policy": "\(ha.reunionPolicy.rawValue)",
                        ])
                    queue.insert(
                        contentsOf: loop.machine.reunionDecided(decision, forkID: fork, peer: peer, now: now), at: queue.startIndex)
                    continue
                }
                try await perform(action, &loop)
                metrics.count(action)
                if case .resync = action { loop.machine.resyncStarted() }
            } catch {
                logger.error("HA: \(action) failed; will decide again", metadata: ["error": "\(error)"])
                loop.machine.failed(now: now)
                if case .promote = action { stores.withdraw() }
                return
            }
        }
    }

    /// A node in a serving role with nothing installed (an action failed half-way) serves again
    /// from where its role says.
    private func ensureServing(_ loop: inout LoopState) async {
        guard stores.epoch == nil, let source = loop.machine.servingSource else { return }
        do {
            switch source {
            case .localDatabase: try await serveLocal(startRevision: nil, &loop)
            case .leadersDatabase: try await serveRouted(&loop)
            }
        } catch {
            logger.warning("HA: cannot serve as \(loop.machine.role.rawValue) yet", metadata: ["error": "\(error)"])
        }
    }

    /// Ends the loop after its current round.
    func stop() {
        stopSignal.stop()
    }

    var isStopped: Bool { stopSignal.isStopped }
    var now: Duration { ContinuousClock.now - start }

    /// Waits `interval`, or less if `stop()` is called meanwhile.
    private func pause(for interval: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            // try?: a cancelled sleep means the stop signal came first, which ends the wait as intended.
            group.addTask { try? await Task.sleep(for: interval) }
            group.addTask { [stopSignal] in await stopSignal.wait() }
            await group.next()
            group.cancelAll()
        }
    }
}

/// A PostgreSQL that cannot take part in a pair, with what to change.
enum HASetupError: Error, CustomStringConvertible {
    case unreadable(database: String, SQLError)
    case walLevel(database: String, String)
    case notSuperuser(database: String, user: String)

    var description: String {
        switch self {
        case .unreadable(let database, let error):
            "cannot read the settings of PostgreSQL at \(database): \(error)"
        case .walLevel(let database, let level):
            "PostgreSQL at \(database) has wal_level = \(level); two-node HA needs wal_level = logical "
                + "(ALTER SYSTEM SET wal_level = logical and restart PostgreSQL; scripts/ha-postgres.sh prepares a server)"
        case .notSuperuser(let database, let user):
            "PostgreSQL role \(user) at \(database) is not a superuser; two-node HA creates and drops logical-replication "
                + "subscriptions, which PostgreSQL 15 allows only to superusers (docs/ha.md, Roles)"
        }
    }
}
