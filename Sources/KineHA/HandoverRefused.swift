/// A handover the machine refuses, with the reason `kine ha handover` prints.
public struct HandoverRefused: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
