/// What a node must remember across restarts about what its clients saw: the highest revision
/// it served (a promotion bumps above it: R2) and, while leading, the wall-clock time of its
/// newest write (the reunion's `newest` rule). Fed once a round; the controller persists what
/// `unpersisted` returns and reports success with `persisted`, so a failed write is retried on
/// the next round instead of being lost.
public struct ServedLedger: Sendable, Equatable {
    public private(set) var highestServed: Int64
    public private(set) var lastWriteUnixMilliseconds: Int64
    private var persistedHighest: Int64
    private var persistedLastWrite: Int64
    /// The served revision of the previous round (0: none yet).
    private var lastSeenRevision: Int64 = 0

    /// What the database holds now.
    public struct Update: Sendable, Equatable {
        public var highestServed: Int64?
        public var lastWriteUnixMilliseconds: Int64?
    }

    /// Starts from what the last run persisted.
    public init(highestServed: Int64, lastWriteUnixMilliseconds: Int64) {
        self.highestServed = highestServed
        self.lastWriteUnixMilliseconds = lastWriteUnixMilliseconds
        persistedHighest = highestServed
        persistedLastWrite = lastWriteUnixMilliseconds
    }

    /// One round: `served` is the newest revision the node's store has published, `epochStart`
    /// its epoch's first, `clock` this node's wall clock (Unix ms).
    public mutating func record(served: Int64, epochStart: Int64, leading: Bool, clock: Int64) {
        highestServed = max(highestServed, served)
        // A write of this node's own: the served revision grew past its epoch's start while leading
        // (not the first round, whose growth is the start itself).
        if leading && lastSeenRevision > 0 && served > lastSeenRevision && served > epochStart {
            lastWriteUnixMilliseconds = max(lastWriteUnixMilliseconds, clock)
        }
        lastSeenRevision = served
    }

    /// What grew since it was last persisted (nil: nothing to write).
    public var unpersisted: Update? {
        let update = Update(
            highestServed: highestServed > persistedHighest ? highestServed : nil,
            lastWriteUnixMilliseconds: lastWriteUnixMilliseconds > persistedLastWrite ? lastWriteUnixMilliseconds : nil)
        return update.highestServed == nil && update.lastWriteUnixMilliseconds == nil ? nil : update
    }

    /// `update` is in the database now.
    public mutating func persisted(_ update: Update) {
        if let highest = update.highestServed { persistedHighest = max(persistedHighest, highest) }
        if let lastWrite = update.lastWriteUnixMilliseconds { persistedLastWrite = max(persistedLastWrite, lastWrite) }
    }
}
