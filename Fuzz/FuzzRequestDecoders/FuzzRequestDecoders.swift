import KineFuzzTargets

#if FUZZING
/// libFuzzer's entry point (scripts/fuzz.sh builds this with -sanitize=fuzzer,address): a
/// finding traps, so libFuzzer saves the input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let finding = FuzzTargets.requestDecoders(input) { fatalError("finding: \(finding)") }
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// SwiftPM links an executable's `main` to `<module>_main`; here that hands over to libFuzzer.
@_cdecl("FuzzRequestDecoders_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments, fuzzOneInput)
}
#else
import Foundation

/// Without libFuzzer: replays the inputs named on the command line (a saved crash, a corpus
/// file), or with `--write-seeds DIR` writes the target's seed inputs there.
@main
struct Replay {
    static func main() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--write-seeds", arguments.count == 2 {
            for (index, seed) in FuzzTargets.seeds(.requestDecoders).enumerated() {
                try Data(seed).write(to: URL(fileURLWithPath: arguments[1]).appendingPathComponent("seed-\(index)"))
            }
            return
        }
        var findings = 0
        for path in arguments {
            let input = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            if let finding = FuzzTargets.requestDecoders(input) {
                print("\(path): \(finding)")
                findings += 1
            }
        }
        if findings > 0 { exit(1) }
    }
}
#endif
