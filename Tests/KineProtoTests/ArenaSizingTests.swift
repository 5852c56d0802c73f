import KineCore
import Testing

@testable import KineProto

/// The arena estimates must cover hot-path responses so they pack from a single block
/// (one arena allocation plus the output array), not a chain of growing blocks.
@Suite struct ArenaSizingTests {
    @Test(arguments: [0, 1, 16, 1024])
    func rangeResponseOf500KeysUsesOneBlock(valueSize: Int) {
        let response = RangeResponse(header: Sample.header, kvs: (0..<500).map { Sample.kv($0, valueSize: valueSize) })
        var arena = Arena(capacity: response.arenaEstimate)
        _ = response.toC(&arena)
        #expect(arena.blockCount == 1)
    }

    @Test func watchResponseUsesOneBlock() {
        let events = (0..<200).map { Event(type: .put, kv: Sample.kv($0), prevKV: Sample.kv($0 + 1)) }
        let response = WatchResponse(header: Sample.header, watchID: 1, events: events)
        var arena = Arena(capacity: response.arenaEstimate)
        _ = response.toC(&arena)
        #expect(arena.blockCount == 1)
    }

    @Test func txnResponseUsesOneBlock() {
        var arena = Arena(capacity: Sample.txnResponse.arenaEstimate)
        _ = Sample.txnResponse.toC(&arena)
        #expect(arena.blockCount == 1)
    }

    @Test func arenaGrowsWhenTheEstimateIsShort() {
        var arena = Arena(capacity: 256)
        _ = arena.allocate(UInt8.self, count: 10_000)
        _ = arena.binary([UInt8](repeating: 7, count: 300))
        #expect(arena.blockCount >= 2)
    }
}
