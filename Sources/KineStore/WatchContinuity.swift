public import KineSQL

/// How a new HA epoch's store relates to the previous epoch's, when open watches may go on across
/// the switch instead of being cancelled as compacted (R3's "continued gap-free", docs/ha.md).
///
/// A promotion bumps revisions to `epochStart` and marks everything below as compacted, so a read or
/// a new watch below it gets etcd's compacted error. A watch that was open on the survivor, though,
/// was only ever sent revisions its previous store published; when none of those is above
/// `through` (the newest revision of the new store before the bump, which holds every row up to it
/// exactly as the old leader did), nothing it saw is missing here and nothing between `through` and
/// `epochStart` exists: it goes on from where it was, reading `(compactedBefore, epochStart]` from
/// the table although the epoch's compaction mark is above it.
public struct WatchContinuity: Sendable, Equatable {
    /// Every revision up to this one is the same in the new store as it was in the previous one.
    public var through: Int64
    /// The compacted revision before the bump: history above it is whole in the new store.
    public var compactedBefore: Int64
    /// The new epoch's first revision, and its compacted revision.
    public var epochStart: Int64

    public init(through: Int64, compactedBefore: Int64, epochStart: Int64) {
        self.through = through
        self.compactedBefore = compactedBefore
        self.epochStart = epochStart
    }

    /// The compacted revision a carried watcher reads history against: the bump's mark is
    /// `epochStart`; once the table is compacted beyond it, the bridge is gone.
    func compactedRevision(forCarried tableCompacted: Int64) -> Int64 {
        tableCompacted == epochStart ? compactedBefore : tableCompacted
    }
}

extension KineStore {
    /// The current and compacted revisions and the newest row id of the database `client`
    /// reaches, from one statement: what a promotion records before its bump (`WatchContinuity`).
    public static func revisions(of client: any SQLClient) async throws(SQLError) -> (current: Int64, compacted: Int64, newestID: Int64) {
        let header = try await client.run(StoreSQL.header)
        return (header.currentRevision, header.compactRevision, header.newestID)
    }
}
