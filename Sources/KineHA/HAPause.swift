/// The maintenance pause (`kine ha pause`): until when (Unix ms, 0: none) and when it was set.
/// The newer setting of the two nodes wins, so a pause given to either node holds on both.
public struct HAPause: Sendable, Equatable {
    public var untilUnixMilliseconds: Int64
    public var setUnixMilliseconds: Int64

    public init(untilUnixMilliseconds: Int64 = 0, setUnixMilliseconds: Int64 = 0) {
        self.untilUnixMilliseconds = untilUnixMilliseconds
        self.setUnixMilliseconds = setUnixMilliseconds
    }

    public func inForce(atUnixMilliseconds now: Int64) -> Bool { untilUnixMilliseconds > now }

    /// A pause (or a resume: until 0) given now; its set time is after this one's even when the
    /// clock has not moved, so the change wins over the setting it replaces.
    public func replaced(untilUnixMilliseconds until: Int64, nowUnixMilliseconds now: Int64) -> HAPause {
        HAPause(untilUnixMilliseconds: until, setUnixMilliseconds: max(now, setUnixMilliseconds + 1))
    }

    /// The peer's setting when it was set later than this one (nil: keep this one).
    public func superseded(by peer: HAPause) -> HAPause? {
        peer.setUnixMilliseconds > setUnixMilliseconds ? peer : nil
    }
}
