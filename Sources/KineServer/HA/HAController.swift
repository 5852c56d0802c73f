import Foundation
import KineCore
import KineHA
import KineHTTP2
import KinePostgres
import KineProto
import KineSQL
import KineStore
import KineSync
import Logging
import Synchronization

/// Runs one node of a two-node pair: probes the peer every interval, feeds what it saw to the
/// role machine (`HARoleMachine`), carries out the actions it returns (lead, promote, follow,
/// resync, synchronous replication on or off) and serves the peer service on the HA port.
/// The SQL of every step is in `HASQL`; docs/ha.md describes the whole protocol.
final class HAController: Sendable {
    struct Shared: Sendable {
        var instance: StoreInstance?
        var stopped = false
        var highestServed: Int64 = 0
        var persistedHighest: Int64 = 0
        var lastProblem = ""
        /// The peer's node name, learned from its first answer (slot and standby names use it).
        var peerName = ""
        /// Wall-clock time (with the test offset) of the newest write seen while leading, and
        /// the served revision it was seen at.
        var lastWriteUnixMilliseconds: Int64 = 0
        var persistedLastWrite: Int64 = 0
        var lastSeenRevision: Int64 = 0
        /// The loop, parked in `sleep` until its interval passes or `stop`.
        var wake: Completion<Void>?
    }

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
    private let start = ContinuousClock.now
    let shared = Mutex(Shared())
    /// What the Status RPC answers.
    let board: HAStatusBoard
    /// Pause, resume and handover requests from the HA port.
    let commands: HACommands
    let metrics: HAMetrics
    private let initial: InitialState

    /// What the last run persisted in `kine_ha_local`.
    struct InitialState {
        var role: HARole?
        var term: UInt64
        var leader: String
        var highestServed: Int64
        var pause: HACommands.Pause
        var lastWriteUnixMilliseconds: Int64
    }

    private init(
        ha: HAConfiguration, configuration: KineConfiguration, stores: StoreHandle, identity: ServerIdentity, logger: Logger,
        local: PostgresConfiguration, peer: PostgresConfiguration, admin: PostgresClient, peerSQL: PostgresClient,
        initial: InitialState, metrics: HAMetrics
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
        peerRPC = PeerRPC(host: ha.peerHost, port: ha.peerPort, timeout: ha.timing.probeTimeout, tls: ha.peerTLS)
        let board = HAStatusBoard(stores: stores)
        self.board = board
        let commands = HACommands(pause: initial.pause)
        self.commands = commands
        let service = PeerService(board: board, commands: commands, defaultHandoverTimeout: ha.handoverTimeout)
        peerServer = GRPCServer(
            configuration: GRPCServerConfiguration(target: ha.listen, tls: ha.peerTLS), router: EtcdRouter([service.methods()]),
            logger: logger)
        shared.withLock { state in
            state.highestServed = initial.highestServed
            state.lastWriteUnixMilliseconds = initial.lastWriteUnixMilliseconds
            state.persistedLastWrite = initial.lastWriteUnixMilliseconds
        }
    }

    var node: String { ha.nodeName }
    var subscription: String { HANames.subscription(node) }
    var peerName: String { shared.withLock { $0.peerName } }

    /// Records the peer's name the first time it answers (or when it changed).
    func learnPeerName(_ name: String) {
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
            let record = try await admin.run(HASQL.readLocalState)
            let initial = InitialState(
                role: HARole(rawValue: record.role), term: record.term, leader: record.leader, highestServed: record.highestServed,
                pause: HACommands.Pause(untilUnixMilliseconds: record.pausedUntilUnixMilliseconds, setUnixMilliseconds: record.pauseSetUnixMilliseconds),
                lastWriteUnixMilliseconds: record.lastWriteUnixMilliseconds)
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
        guard let setup = try await admin.run(HASQL.setupCheck) else { return }
        let walLevel = setup.walLevel
        if walLevel != "logical" {
            throw ConfigurationError(
                "PostgreSQL at \(local) has wal_level = \(walLevel); two-node HA needs wal_level = logical "
                    + "(ALTER SYSTEM SET wal_level = logical and restart PostgreSQL; scripts/ha-postgres.sh prepares a server)")
        }
        if !setup.superuser {
            throw ConfigurationError(
                "PostgreSQL role \(setup.user) at \(local) is not a superuser; two-node HA creates and drops logical-replication "
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
            var actions = machine.step(observation)
            var acceptedHandover: Completion<Result<Void, HACommands.HandoverError>>?
            if let request = commands.takeHandover() {
                do throws(HandoverRefused) {
                    actions += try machine.requestHandover(now: now, timeout: request.timeout)
                    acceptedHandover = request.reply
                } catch {
                    request.reply.complete(.failure(HACommands.HandoverError(description: error.description)))
                }
            }
            await carryOut(actions, machine: &machine)
            await ensureServing(machine)
            publish(machine)
            // Answered only now: a caller polling Status right after the answer must already see
            // the handover, and a step-down that failed (the round rolled back) is no handover.
            if let acceptedHandover {
                acceptedHandover.complete(
                    machine.handoverTo.isEmpty
                        ? .failure(HACommands.HandoverError(description: "stepping down for the handover failed; this node leads on (see its log)"))
                        : .success(()))
            }
            await sleep(ha.timing.probeInterval)
        }
    }

    /// Performs the actions in order; a reunion's decision brings further actions. On the first
    /// failure the machine goes back to where the round started.
    private func carryOut(_ actions: [HAAction], machine: inout HARoleMachine) async {
        var queue = actions[...]
        while let action = queue.popFirst() {
            logger.info("HA: \(Self.describe(action))", metadata: ["kine.ha.role": "\(machine.role.rawValue)", "kine.ha.term": "\(machine.term)"])
            do {
                if case .decideReunion(let peer) = action {
                    let (decision, fork) = try await decideReunion(with: peer, machine: machine)
                    metrics.count(action)
                    logger.notice("HA: reunion decided", metadata: [
                        "kine.ha.winner": "\(decision.winner)", "kine.ha.loser": "\(decision.loser)", "kine.ha.rule": "\(decision.rule.rawValue)",
                        "kine.ha.forkID": "\(fork)", "kine.ha.policy": "\(ha.reunionPolicy.rawValue)",
                    ])
                    queue.insert(contentsOf: machine.reunionDecided(decision, forkID: fork, peer: peer, now: now), at: queue.startIndex)
                    continue
                }
                try await perform(action, machine: machine)
                metrics.count(action)
                if case .resync = action { machine.resyncStarted() }
            } catch {
                logger.error("HA: \(Self.describe(action)) failed; will decide again", metadata: ["error": "\(error)"])
                machine.failed(now: now)
                if case .promote = action { stores.withdraw() }
                return
            }
        }
    }

    /// A node in a serving role with nothing installed (an action failed half-way) serves again
    /// from where its role says.
    func ensureServing(_ machine: HARoleMachine) async {
        let role = machine.role
        guard stores.epoch == nil, machine.servesClients else { return }
        do {
            if role.isLeading { try await serveLocal(startRevision: nil) } else { try await serveRouted() }
        } catch {
            logger.warning("HA: cannot serve as \(role.rawValue) yet", metadata: ["error": "\(error)"])
        }
    }

    func stop() {
        let wake = shared.withLock { state in
            state.stopped = true
            defer { state.wake = nil }
            return state.wake
        }
        wake?.complete()
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

    var isStopped: Bool { shared.withLock { $0.stopped } }
    var now: Duration { ContinuousClock.now - start }

    private func sleep(_ interval: Duration) async {
        var timer: Task<Void, Never>?
        await Completion<Void>.wait { wake in
            let stopped = shared.withLock { state in
                if state.stopped { return true }
                state.wake = wake
                return false
            }
            if stopped { return wake.complete() }
            timer = Task {
                try? await Task.sleep(for: interval)
                wake.complete()
            }
        }
        timer?.cancel()
    }
}
