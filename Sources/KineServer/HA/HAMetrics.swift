import KineHA
import Synchronization

/// The HA figures `/metrics` shows in Prometheus text format (role, term, replication lag,
/// promotions, step-downs, reunions, saved split writes). Counters count since this process started.
final class HAMetrics: Sendable {
    private struct Values {
        var role: HARole = .bootstrap
        var term: UInt64 = 0
        var lagRevisions: Int64 = 0
        var paused = false
        var promotions = 0
        var stepDowns = 0
        var reunions = 0
        var splitWritesSaved = 0
    }

    private let values = Mutex(Values())

    func observe(role: HARole, term: UInt64, lagRevisions: Int64, paused: Bool) {
        values.withLock { values in
            values.role = role
            values.term = term
            values.lagRevisions = lagRevisions
            values.paused = paused
        }
    }

    func count(_ action: HAAction) {
        values.withLock { values in
            switch action {
            case .promote: values.promotions += 1
            case .stepDown: values.stepDowns += 1
            case .decideReunion: values.reunions += 1
            default: break
            }
        }
    }

    func splitWritesSaved(_ rows: Int) {
        values.withLock { $0.splitWritesSaved += rows }
    }

    /// The metric families, each with HELP and TYPE lines.
    func render() -> String {
        let v = values.withLock { $0 }
        var text = PrometheusText()
        text.family(
            "kine_ha_role", .gauge, "1 for the node's current HA role.",
            HARole.allCases.map { ("{role=\"\($0.rawValue)\"}", $0 == v.role ? "1" : "0") })
        text.family("kine_ha_term", .gauge, "The leader term this node is at.", v.term)
        text.family(
            "kine_ha_replication_lag_revisions", .gauge, "Revisions the local copy is behind the leader (followers).", v.lagRevisions)
        text.family("kine_ha_paused", .gauge, "1 while a maintenance pause (kine ha pause) is in force.", v.paused ? 1 : 0)
        text.family("kine_ha_promotions_total", .counter, "Promotions (with a revision bump) this process carried out.", v.promotions)
        text.family(
            "kine_ha_step_downs_total", .counter, "Times this process stopped taking writes (reunion lost, isolation, handover).",
            v.stepDowns)
        text.family("kine_ha_reunions_total", .counter, "Reunions after a split this process decided.", v.reunions)
        text.family(
            "kine_ha_split_writes_saved_total", .counter,
            "Rows this process wrote during a split and saved on the winner before resyncing (kine ha split-writes list).",
            v.splitWritesSaved)
        text.leaderFamilies(hasLeader: v.role != .bootstrap && v.role != .promoting, isLeader: v.role.isLeading)
        return text.text
    }
}

extension PrometheusText {
    /// etcd's leader gauges, where kine has the value.
    mutating func leaderFamilies(hasLeader: Bool, isLeader: Bool) {
        family("etcd_server_has_leader", .gauge, "Whether or not a leader exists. 1 is existence, 0 is not.", hasLeader ? 1 : 0)
        family("etcd_server_is_leader", .gauge, "Whether or not this member is a leader. 1 if is, 0 otherwise.", isLeader ? 1 : 0)
    }
}
