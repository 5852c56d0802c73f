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

/// Carrying out the role machine's actions: each persists the role before the node serves in
/// it, and changes the database the node serves from, its copy, or its standby setting.
extension HAController {
    func perform(_ action: HAAction, machine: HARoleMachine) async throws {
        switch action {
        case .lead(let term, _):
            try await persist(role: .leaderAlone, term: term, leader: node)
            try await detachOwnSubscription()
            try await openForWrites()
            _ = try await admin.pipeline([HASQL.claimLeadership(term: term, node: node)])
            try await serveLocal(startRevision: nil)
        case .promote(let term, let peerMaxRevision, let forkID, _):
            stores.withdraw()
            // The routed store's watch hub publishes nothing more: what its watchers were sent is
            // fixed now, and checked against the local copy below.
            let routed = shared.withLock { $0.instance }
            routed?.store.watchHub.stop()
            try await persist(role: .promoting, term: term, leader: node)
            try await detachOwnSubscription()
            let local = try await KineStore.revisions(of: admin)
            let localMax = local.newestID
            let served = shared.withLock { $0.highestServed }
            let target = max(localMax, served, peerMaxRevision) + ha.revisionBump
            let fork = forkID ?? localMax
            _ = try await admin.pipeline(HASQL.bump(to: target, term: term, node: node, forkID: fork, lockKey: HAIdentity.writeLockKey))
            try await openForWrites()
            // Open watches go on when the local copy holds everything they can have been sent
            // (each stream checks its hub against `through`); otherwise they are cancelled as
            // compacted at the bump (R3).
            let continuity = WatchContinuity(through: local.current, compactedBefore: local.compacted, epochStart: target)
            try await serveLocal(startRevision: target, continuity: continuity)
            try await persist(role: .leaderAlone, term: term, leader: node)
            _ = try? await admin.pipeline([HASQL.dropInactiveSlot(HANames.subscription(peerName))])
            logger.notice("HA: promoted", metadata: [
                "kine.ha.term": "\(term)", "kine.ha.epochStart": "\(target)", "kine.ha.localMaxID": "\(localMax)",
                "kine.ha.highestServed": "\(served)", "kine.ha.peerMaxRevision": "\(peerMaxRevision)", "kine.ha.forkID": "\(fork)",
            ])
        case .stepDown:
            // Fenced first, so nothing new commits; then the store's sessions end (commits waiting
            // for a standby fail rather than being acknowledged later), and clients get Unavailable.
            stores.withdraw()
            try await adminEach([HASQL.fence, HASQL.reload, HASQL.terminateStoreSessions])
            let maxID = try await admin.run(HASQL.localMaxID)
            // A handover's follower waits for exactly this id.
            board.update { $0.localMaxID = maxID }
        case .decideReunion:
            break  // decided by `carryOut`, which has the machine
        case .follow(let leader, let term, _):
            do {
                try await persist(role: .followerSyncing, term: term, leader: leader)
            } catch {
                logger.warning("HA: cannot persist the follower role yet (local PostgreSQL down?); routing anyway", metadata: ["error": "\(error)"])
            }
            try await serveRouted()
        case .resync(let reason):
            try await resync(leaderTerm: machine.term, reason: reason)
        case .resumeCopy:
            try await adminEach([HASQL.enableSubscription(subscription)])
        case .refreshCopy:
            // Rows of a table new to the copy come with it (copy_data); a conflict there stops
            // the subscription (disable_on_error), which the resume-then-resync path mends.
            try await adminEach([HASQL.refreshSubscription(subscription)])
        case .setSynchronous(let on, _):
            try await adminEach([HASQL.synchronousStandbys(on ? HANames.application(peerName) : nil), HASQL.reload])
        case .persist:
            try await persist(role: machine.role, term: machine.term, leader: machine.leader)
        }
    }

    func persist(role: HARole, term: UInt64, leader: String) async throws {
        _ = try await admin.pipeline([HASQL.writeLocalState(node: node, role: role.rawValue, term: term, leader: leader, schemaVersion: ha.schemaVersion)])
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
    func serveLocal(startRevision: Int64?, continuity: WatchContinuity? = nil) async throws {
        let instance = try await StoreInstance.open(localDatabase, configuration: configuration, logger: logger, connectTimeout: .seconds(10))
        let start: Int64
        if let startRevision {
            start = startRevision
        } else {
            start = try await instance.store.revisions().compact
        }
        install(instance, startRevision: start, continuity: continuity)
    }

    /// Follower: every request goes to the leader's database, as a second kine process there.
    func serveRouted() async throws {
        let instance = try await StoreInstance.open(
            peerDatabase, configuration: configuration, logger: logger, connectTimeout: ha.timing.liveness)
        let start = try await instance.store.revisions().compact
        install(instance, startRevision: start)
    }

    func install(_ instance: StoreInstance, startRevision: Int64, continuity: WatchContinuity? = nil) {
        let previous = shared.withLock { state in
            defer { state.instance = instance }
            return state.instance
        }
        stores.install(instance.store, startRevision: startRevision, continuity: continuity)
        logger.info("HA: serving from \(instance.database)", metadata: [
            "kine.ha.epochStart": "\(startRevision)", "kine.ha.watchesGoOnThrough": "\(continuity.map { String($0.through) } ?? "none")",
        ])
        // The old database may be dead: its pool's shutdown must not hold up the new epoch.
        if let previous { Task { await previous.shutdown() } }
    }

    /// Re-makes the local copy: fence, end waiting commits, detach, clean stale slots on both
    /// sides, save the rows the leader does not have, empty the copy, subscribe with `copy_data`.
    func resync(leaderTerm: UInt64, reason: String) async throws {
        // Fenced first (no new local transaction), then no waiting for a standby: a node that
        // led kept `synchronous_standby_names`, and its waiting commits are ended, not released.
        try await adminEach([HASQL.fence, HASQL.reload, HASQL.terminateStoreSessions, HASQL.synchronousStandbys(nil), HASQL.reload])
        try await detachOwnSubscription()
        _ = try await peerSQL.pipeline([HASQL.dropInactiveSlot(subscription)])
        _ = try? await admin.pipeline([HASQL.dropInactiveSlot(HANames.subscription(peerName))])
        let localTerm = UInt64(max(try await admin.run(HASQL.epoch).term, 0))
        if localTerm < leaderTerm {
            let fork = try await peerSQL.run(HASQL.epoch).forkID
            let saved = try await saveSplitWrites(above: fork, leaderTerm: leaderTerm, reason: reason)
            metrics.splitWritesSaved(saved)
            if saved > 0 {
                logger.warning("HA: saved this node's split writes on the leader before resyncing (kine ha split-writes list)", metadata: [
                    "kine.ha.savedRows": "\(saved)", "kine.ha.forkID": "\(fork)", "kine.ha.localTerm": "\(localTerm)",
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

    static func describe(_ action: HAAction) -> String {
        switch action {
        case .lead(let term, let reason): return "leading at term \(term): \(reason)"
        case .promote(let term, _, _, let reason): return "promoting to term \(term): \(reason)"
        case .stepDown(let reason): return "stepping down: \(reason)"
        case .decideReunion(let peer): return "both nodes lead (peer \(peer.node) at term \(peer.term)): deciding the reunion"
        case .follow(let leader, let term, let reason): return "following \(leader) at term \(term): \(reason)"
        case .resync(let reason): return "resyncing the local copy: \(reason)"
        case .resumeCopy(let reason): return "resuming the local copy: \(reason)"
        case .refreshCopy(let reason): return "adding the leader's new tables to the local copy: \(reason)"
        case .setSynchronous(let on, let reason): return "synchronous replication \(on ? "on" : "off"): \(reason)"
        case .persist(let reason): return "role change: \(reason)"
        }
    }
}
