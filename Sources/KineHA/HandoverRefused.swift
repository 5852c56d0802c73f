/// A handover the machine refuses; the description is what `kine ha handover` prints.
public enum HandoverRefused: Error, Sendable, Equatable, CustomStringConvertible {
    /// Only a leader with an attached, caught-up follower hands over.
    case notLeading(role: HARole)
    /// The leader is fenced (it lost its peer and the witness, or waits for a reunion verdict).
    case fenced
    case alreadyInProgress(to: String)
    /// The follower is not attached with a ready copy.
    case followerNotReady

    public var description: String {
        switch self {
        case .notLeading(let role):
            "this node is \(role.rawValue); only a leader with a caught-up follower hands over"
        case .fenced:
            "this node is fenced (not taking writes); only a leader with a caught-up follower hands over"
        case .alreadyInProgress(let target):
            "a handover to \(target) is already in progress"
        case .followerNotReady:
            "the follower is not attached with a ready copy"
        }
    }
}
