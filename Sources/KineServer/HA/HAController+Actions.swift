import KineCore
import KineHA
import KinePostgres
import KineSQL
import KineStore
import Logging

/// Performing the role machine's actions: each persists the role before the node serves in it,
/// and changes the database the node serves from, its copy, or its standby setting.
extension HAController {
    func perform(_ action: HAAction, _ loop: inout LoopState) async throws {
        switch action {
        case .lead(let term, _):
            try await persist(role: .leaderAlone, term: term, leader: node)
            try await detachOwnSubscription()
            try await openForWrites()
            _ = try await admin.pipeline([HASQL.claimLeadership(term: term, node: node)])
            try await serveLocal(startRevision: nil, &loop)
        case .promote(let term, let peerMaxRevision, let forkID, _):
            try await promote(term: term, peerMaxRevision: peerMaxRevision, forkID: forkID, &loop)
        case .stepDown:
            // Fenced first, so nothing new commits; then the store's sessions end (commits waiting
            // for a standby fail rather than being acknowledged later), and clients get Unavailable.
            stores.withdraw()
            try await adminEach([HASQL.fence, HASQL.reload, HASQL.terminateStoreSessions])
            let maxID = try await admin.run(HASQL.localMaxID)
            // A handover's follower waits for exactly this id.
            board.update { $0.localMaxID = maxID }
        case .decideReunion:
            break  // decided by `carryOut`, which feeds the decision back to the machine
        case .follow(let leader, let term, _):
            do {
                try await persist(role: .followerSyncing, term: term, leader: leader)
            } catch {
                logger.warning(
                    "HA: cannot persist the follower role yet (local PostgreSQL down?); routing anyway", metadata: ["error": "\(error)"])
            }
            do {
                try await serveRouted(&loop)
            } catch {
                // Following is decided; routing is retried every round (`ensureServing`). A new
                // leader's database may refuse the routed store's schema check for a moment
                // after its promotion (its unfencing reload is asynchronous).
                logger.warning("HA: cannot route to \(leader) yet; trying again next round", metadata: ["error": "\(error)"])
            }
        case .resync(let reason):
            try await resync(leaderTerm: loop.machine.term, peerName: loop.peerName, reason: reason)
        case .resumeCopy:
            try await adminEach([HASQL.enableSubscription(subscription)])
        case .refreshCopy:
            // Rows of a table new to the copy come with it (copy_data); a conflict there stops
            // the subscription (disable_on_error), which the resume-then-resync path mends.
            try await adminEach([HASQL.refreshSubscription(subscription)])
        case .setSynchronous(let on, _):
            try await adminEach([HASQL.synchronousStandbys(on ? HANames.application(loop.peerName ?? "") : nil), HASQL.reload])
        case .persist:
            try await persist(role: loop.machine.role, term: loop.machine.term, leader: loop.machine.leader ?? "")
        }
    }

    /// Takes over: the routed store stops, the copy is detached, revisions jump above everything
    /// seen (`Promotion`), the database opens for writes, and the local store serves.
    private func promote(term: UInt64, peerMaxRevision: Int64, forkID: Int64?, _ loop: inout LoopState) async throws {
        stores.withdraw()
        // The routed store's watch hub publishes nothing more: what its watchers were sent is
        // fixed now, and checked against the local copy below.
        loop.instance?.store.watchHub.stop()
        // The crash marker: a node that restarts as `promoting` takes over with a bump, never as a plain lead.
        try await persist(role: .promoting, term: term, leader: node)
        try await detachOwnSubscription()
        let local = try await KineStore.revisions(of: admin)
        let plan = Promotion(
            localNewestID: local.newestID, highestServed: loop.ledger.highestServed, peerMaxRevision: peerMaxRevision,
            bump: ha.revisionBump, forkID: forkID)
        _ = try await admin.pipeline(
            HASQL.bump(to: plan.epochStart, term: term, node: node, forkID: plan.forkID, lockKey: HAIdentity.writeLockKey))
        try await openForWrites()
        // Open watches go on when the local copy holds everything they can have been sent
        // (each stream checks its hub against `through`); otherwise they are cancelled as
        // compacted at the bump (R3).
        let continuity = WatchContinuity(through: local.current, compactedBefore: local.compacted, epochStart: plan.epochStart)
        try await serveLocal(startRevision: plan.epochStart, continuity: continuity, &loop)
        try await persist(role: .leaderAlone, term: term, leader: node)
        if let peerName = loop.peerName {
            do {
                _ = try await admin.pipeline([HASQL.dropInactiveSlot(HANames.subscription(peerName))])
            } catch {
                // The old leader's slot here only holds WAL; the next resync drops it again.
                logger.warning("HA: cannot drop the peer's old replication slot yet", metadata: ["error": "\(error)"])
            }
        }
        logger.notice(
            "HA: promoted",
            metadata: [
                "kine.ha.term": "\(term)", "kine.ha.epochStart": "\(plan.epochStart)", "kine.ha.localMaxID": "\(local.newestID)",
                "kine.ha.highestServed": "\(loop.ledger.highestServed)", "kine.ha.peerMaxRevision": "\(peerMaxRevision)",
                "kine.ha.forkID": "\(plan.forkID)",
            ])
    }

    func persist(role: HARole, term: UInt64, leader: String) async throws {
        _ = try await admin.pipeline([
            HASQL.writeLocalState(node: node, role: role.rawValue, term: term, leader: leader, schemaVersion: ha.schemaVersion)
        ])
    }

    /// One pipeline call per statement: ALTER SYSTEM and (DROP/CREATE) SUBSCRIPTION refuse to run
    /// in a transaction block, which several statements of one call would form.
    func adminEach(_ statements: [String]) async throws {
        for statement in statements { _ = try await admin.pipeline([SQLStatement(statement)]) }
    }

    func openForWrites() async throws {
        try await adminEach([HASQL.unfence, HASQL.synchronousStandbys(nil), HASQL.reload])
    }

    func detachOwnSubscription() async throws {
        if try await admin.run(HASQL.subscriptionExists(subscription)) > 0 { try await adminEach(HASQL.detachSubscription(subscription)) }
    }

    /// Leader: serve from the local database. `startRevision` is the promotion's bump, else the
    /// table's compacted revision.
    func serveLocal(startRevision: Int64?, continuity: WatchContinuity? = nil, _ loop: inout LoopState) async throws {
        let instance = try await StoreInstance.open(
            localDatabase, configuration: configuration, logger: logger, connectTimeout: .seconds(10))
        let start: Int64
        if let startRevision {
            start = startRevision
        } else {
            start = try await instance.store.revisions().compact
        }
        await install(instance, startRevision: start, continuity: continuity, &loop)
    }

    /// Follower: every request goes to the leader's database, as a second kine process there.
    func serveRouted(_ loop: inout LoopState) async throws {
        let instance = try await StoreInstance.open(
            peerDatabase, configuration: configuration, logger: logger, connectTimeout: ha.timing.liveness)
        let start = try await instance.store.revisions().compact
        await install(instance, startRevision: start, &loop)
    }

    private func install(_ instance: StoreInstance, startRevision: Int64, continuity: WatchContinuity? = nil, _ loop: inout LoopState) async
    {
        let previous = loop.instance
        loop.instance = instance
        stores.install(instance.store, startRevision: startRevision, continuity: continuity)
        logger.info(
            "HA: serving from \(instance.database)",
            metadata: [
                "kine.ha.epochStart": "\(startRevision)",
                "kine.ha.watchesGoOnThrough": "\(continuity.map { String($0.through) } ?? "none")",
            ])
        // The old database may be dead: its pool's shutdown must not hold up the new epoch.
        if let previous { await cleanup.submit { await previous.shutdown() } }
    }

    /// Re-makes the local copy: fence, end waiting commits, detach, clean stale slots on both
    /// sides, save the rows the leader does not have, empty the copy, subscribe with `copy_data`.
    func resync(leaderTerm: UInt64, peerName: String?, reason: String) async throws {
        // Fenced first (no new local transaction), then no waiting for a standby: a node that
        // led kept `synchronous_standby_names`, and its waiting commits are ended, not released.
        try await adminEach([HASQL.fence, HASQL.reload, HASQL.terminateStoreSessions, HASQL.synchronousStandbys(nil), HASQL.reload])
        try await detachOwnSubscription()
        _ = try await peerSQL.pipeline([HASQL.dropInactiveSlot(subscription)])
        if let peerName {
            // The leader's own slot here, from when it followed this node; a leftover only holds WAL.
            _ = try await admin.pipeline([HASQL.dropInactiveSlot(HANames.subscription(peerName))])
        }
        let localEpoch = try await admin.run(HASQL.epoch)
        if localEpoch.mustSaveSplitWrites(beforeFollowingTerm: leaderTerm) {
            let fork = try await peerSQL.run(HASQL.epoch).forkID
            let saved = try await saveSplitWrites(above: fork, leaderTerm: leaderTerm, reason: reason)
            metrics.splitWritesSaved(saved)
            if saved > 0 {
                logger.warning(
                    "HA: saved this node's split writes on the leader before resyncing (kine ha split-writes list)",
                    metadata: [
                        "kine.ha.savedRows": "\(saved)", "kine.ha.forkID": "\(fork)", "kine.ha.localTerm": "\(localEpoch.term)",
                        "kine.ha.leaderTerm": "\(leaderTerm)",
                    ])
            }
        }
        try await carrySplitWritesToLeader()
        try await adminEach([HASQL.emptyCopy])
        let connection = peerDatabase.conninfo(overrides: [
            "application_name": HANames.application(node), "connect_timeout": "5",
            "keepalives_idle": "5", "keepalives_interval": "2", "keepalives_count": "3",
        ])
        try await adminEach([HASQL.createSubscription(subscription, connection: connection, slot: subscription)])
        _ = try await admin.pipeline([HASQL.setSubscribedTerm(leaderTerm)])
        logger.info("HA: resync started (copying the leader's tables)", metadata: ["kine.ha.reason": "\(reason)"])
    }
}
