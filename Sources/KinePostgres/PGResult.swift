internal import CLibPQ
import Foundation
import KineSQL

/// Reading libpq results: rows into `SQLResult`, errors into `SQLError`.
enum PGResult {

    /// Copies a result into one `SQLRowBlock`: all cells in one buffer, bounds in another.
    static func decode(_ result: OpaquePointer) -> SQLResult {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        var total = 0
        var bounds: [Int] = []
        bounds.reserveCapacity(rowCount * columnCount * 2)
        for row in 0..<Int32(rowCount) {
            for column in 0..<Int32(columnCount) {
                if PQgetisnull(result, row, column) == 1 {
                    bounds.append(-1)
                    bounds.append(0)
                } else {
                    let length = Int(PQgetlength(result, row, column))
                    bounds.append(total)
                    bounds.append(length)
                    total += length
                }
            }
        }
        let bytes = [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
            var cell = 0
            for row in 0..<Int32(rowCount) {
                for column in 0..<Int32(columnCount) {
                    let start = bounds[cell * 2]
                    let length = bounds[cell * 2 + 1]
                    cell += 1
                    guard start >= 0, length > 0, let value = PQgetvalue(result, row, column), let base = buffer.baseAddress else {
                        continue
                    }
                    (base + start).update(from: UnsafeRawPointer(value).assumingMemoryBound(to: UInt8.self), count: length)
                }
            }
            initialized = total
        }
        let block = SQLRowBlock(columnCount: columnCount, bytes: bytes, bounds: bounds)
        let rows = (0..<rowCount).map { SQLRow(block: block, row: $0) }
        var affected = 0
        if let tuples = PQcmdTuples(result) { affected = Int(String(cString: tuples)) ?? 0 }
        return SQLResult(rows: rows, affectedRows: affected)
    }

    private static func field(_ result: OpaquePointer, _ code: UInt8) -> String? {
        PQresultErrorField(result, Int32(code)).map { String(cString: $0) }
    }

    /// Maps an error result to `SQLError`; connection-class SQLSTATEs (08xxx, 57P01–57P03) and a
    /// broken connection become `.connection`.
    static func error(from result: OpaquePointer, conn: OpaquePointer) -> SQLError {
        let sqlState = field(result, UInt8(ascii: "C"))
        let constraint = field(result, UInt8(ascii: "n"))
        var message = field(result, UInt8(ascii: "M")) ?? ""
        if message.isEmpty {
            message = PQresultErrorMessage(result).map { String(cString: $0) } ?? ""
            message = message.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if message.isEmpty { message = errorMessage(conn) }
        let isConnection =
            PQstatus(conn) != CONNECTION_OK || sqlState?.hasPrefix("08") == true
            || ["57P01", "57P02", "57P03"].contains(sqlState ?? "")
        return SQLError(kind: isConnection ? .connection : .server, sqlState: sqlState, constraint: constraint, message: message)
    }

    static func errorMessage(_ conn: OpaquePointer) -> String {
        let text = PQerrorMessage(conn).map { String(cString: $0) } ?? ""
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? "unknown libpq error" : trimmed
    }
}
