import KineStore

/// The store's figures as metric families: revisions and database size, the read cache, watch
/// streams and events, leases, compaction. etcd's names where etcd exports the same figure
/// (dashboards read them), Go kine's `kine_compact_total`, `kine_` names for the rest.
enum StoreMetrics {
    static func render(counters c: StoreCounters, storage: StorageFigures?, cache: ReadCacheFigures?) -> String {
        var text = PrometheusText()
        if let storage {
            text.family(
                "etcd_mvcc_db_total_size_in_bytes", .gauge, "Total size of the underlying database physically allocated in bytes.",
                storage.databaseSize)
            text.family("etcd_debugging_mvcc_current_revision", .gauge, "The current revision of store.", storage.currentRevision)
            text.family(
                "etcd_debugging_mvcc_compact_revision", .gauge, "The revision of the last compaction in store.", storage.compactRevision)
            text.family("kine_leases", .gauge, "Leases granted and not yet revoked or expired.", storage.leases)
        }
        if let cache {
            text.family("kine_read_cache_keys", .gauge, "Live keys held in the read cache.", cache.keys)
            text.family(
                "kine_read_cache_tombstones", .gauge, "Deleted keys whose tombstone the read cache keeps until compaction.",
                cache.tombstones)
            text.family("kine_read_cache_bytes", .gauge, "Bytes of the keys and values held in the read cache.", cache.bytes)
        }
        text.family("etcd_debugging_mvcc_watch_stream_total", .gauge, "Total number of watch streams.", c.watchStreams)
        text.family("etcd_debugging_mvcc_watcher_total", .gauge, "Total number of watchers.", c.watchers)
        text.family("etcd_debugging_mvcc_events_total", .counter, "Total number of events sent by this member.", c.eventsSent)
        text.family(
            "kine_watch_catch_ups_total", .counter,
            "Catch-up rounds of watchers behind the newest revision, by where their events came from.",
            [
                ("{source=\"memory\"}", "\(c.catchUpsFromMemory)"),
                ("{source=\"database\"}", "\(c.catchUpsFromDatabase)"),
            ])
        text.family(
            "kine_watch_hub_revisions_total", .counter,
            "Revisions published to this process's watchers and read cache that its own Writer did not hand over (other processes' commits), by where their events came from.",
            [
                ("{source=\"notification\"}", "\(c.revisionsFromNotices)"),
                ("{source=\"table\"}", "\(c.revisionsFromTable)"),
            ])
        text.family(
            "kine_watch_compacted_cancels_total", .counter, "Watchers cancelled because their start revision was compacted away.",
            c.compactedCancels)
        text.family("etcd_debugging_lease_granted_total", .counter, "The total number of granted leases.", c.leasesGranted)
        text.family("etcd_debugging_lease_revoked_total", .counter, "The total number of revoked leases.", c.leasesRevoked)
        text.family(
            "etcd_debugging_lease_renewed_total", .counter, "The number of renewed leases seen by the leader.",
            c.leasesRenewed)
        text.family(
            "kine_lease_expired_total", .counter, "Leases this process expired (their keys deleted in one revision).",
            c.leasesExpired)
        text.family(
            "kine_compact_total", .counter, "Compactions by result (conflict: another process moved the mark first).",
            [
                ("{result=\"success\"}", "\(c.compactionsSucceeded)"),
                ("{result=\"error\"}", "\(c.compactionsFailed)"),
                ("{result=\"conflict\"}", "\(c.compactionsConflicted)"),
            ])
        text.family(
            "etcd_debugging_mvcc_db_compaction_keys_total", .counter, "Total number of db keys compacted.",
            c.compactedRows)
        text.family(
            "kine_compaction_seconds_total", .counter, "Time spent compacting.",
            Double(c.compactionMicroseconds) / 1_000_000)
        return text.text
    }
}
