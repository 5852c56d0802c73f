import KineFuzzTargets

#if FUZZING
// Entry points of the libFuzzer build (scripts/fuzz.sh: -DFUZZING -sanitize=fuzzer,address).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { FuzzDriver.testOneInput(.requestDecoders, data, size) }

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
/// The plain build replays inputs (or writes seeds): FuzzDriver.replay.
@main
struct Replay {
    static func main() throws { try FuzzDriver.replay(.requestDecoders, arguments: Array(CommandLine.arguments.dropFirst())) }
}
#endif
