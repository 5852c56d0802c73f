import KineFuzzTargets

#if FUZZING
// The libFuzzer build's entry points (scripts/fuzz.sh: -DFUZZING -sanitize=fuzzer,address).
// SwiftPM links an executable's `main` to `<module>_main`, which hands over to libFuzzer.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { FuzzDriver.testOneInput(.gateway, data, size) }

@_cdecl("FuzzGateway_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzDriver.runLibFuzzer(argc, argv, fuzzOneInput)
}
#else
/// The plain build replays inputs (or writes seeds).
@main
struct Replay {
    static func main() throws { try FuzzDriver.replay(.gateway, arguments: Array(CommandLine.arguments.dropFirst())) }
}
#endif
