import Foundation

/// What every fuzz executable does, so each is only its entry points: under libFuzzer, check one
/// input (a finding traps, and libFuzzer saves the input); without it, replay files or write the
/// target's seeds.
public enum FuzzDriver {
    /// libFuzzer's `LLVMFuzzerTestOneInput` body.
    public static func testOneInput(_ target: FuzzTargets.Target, _ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
        if let finding = FuzzTargets.property(target)(input) { fatalError("finding: \(finding)") }
        return 0
    }

    /// The plain build's `main`: replays the inputs named on the command line (a saved crash, a
    /// corpus file), or with `--write-seeds DIR` writes the target's seed inputs there. Exits 1
    /// when an input breaks the property.
    public static func replay(_ target: FuzzTargets.Target, arguments: [String]) throws {
        if arguments.first == "--write-seeds", arguments.count == 2 {
            for (index, seed) in FuzzTargets.seeds(target).enumerated() {
                try Data(seed).write(to: URL(fileURLWithPath: arguments[1]).appendingPathComponent("seed-\(index)"))
            }
            return
        }
        var findings = 0
        for path in arguments {
            let input = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            if let finding = FuzzTargets.property(target)(input) {
                print("\(path): \(finding)")
                findings += 1
            }
        }
        if findings > 0 { exit(1) }
    }
}

extension FuzzTargets {
    /// The property a target checks.
    public static func property(_ target: Target) -> ([UInt8]) -> String? {
        switch target {
        case .deframer: deframer
        case .http2Server: http2Server
        case .requestDecoders: requestDecoders
        case .gateway: gateway
        }
    }
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
private func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

extension FuzzDriver {
    /// Hands the process over to libFuzzer, which calls `callback` with each input.
    public static func runLibFuzzer(
        _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt {
        var count = argc
        var arguments = argv
        return runFuzzerDriver(&count, &arguments, callback)
    }
}
#endif
