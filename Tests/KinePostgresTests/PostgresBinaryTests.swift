import KineSQL
import Testing

@testable import KinePostgres

@Suite("Binary encoding")
struct PostgresBinaryTests {
    @Test("int8 is big-endian and decodes through SQLRow.int64")
    func int8() {
        for value: Int64 in [0, 1, -1, 42, -42, .max, .min, 1 << 40] {
            let encoded = PostgresBinary.encode(.int64(value))
            #expect(encoded.oid == 20)
            #expect(encoded.bytes?.count == 8)
            #expect(SQLRow(columns: [encoded.bytes]).int64(0) == value)
        }
        #expect(PostgresBinary.encode(.int64(1)).bytes == [0, 0, 0, 0, 0, 0, 0, 1])
    }

    @Test("arrays round-trip through the decoder")
    func arrays() throws {
        let bytes = PostgresBinary.encode(.bytesArray([[0, 1], nil, [], [255]])).bytes ?? []
        let decoded = try #require(PostgresBinary.decodeArray(bytes))
        #expect(decoded.elementOID == 17)
        #expect(decoded.elements == [[0, 1], nil, [], [255]])
        let empty = PostgresBinary.encode(.int64Array([])).bytes ?? []
        #expect(empty == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20])
        #expect(SQLRow(columns: [PostgresBinary.encode(.int64Array([3, -4])).bytes]).int64Array(0) == [3, -4])
        #expect(SQLRow(columns: [PostgresBinary.encode(.textArray(["a", "é"])).bytes]).textArray(0) == ["a", "é"])
        #expect(PostgresBinary.decodeArray([0, 0, 0, 1]) == nil)
    }
}
