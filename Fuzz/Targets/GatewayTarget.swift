import KineCore
import KineHTTP2
import KineProto

/// The JSON gateway's inputs: request bodies (JSON to protobuf), response payloads (protobuf to
/// JSON) and the HTTP/1.1 requests that carry them.
extension FuzzTargets {
    /// The request messages the gateway's routes read, and the responses they write.
    static let gatewayMessages: [String] = [
        "Range", "Put", "DeleteRange", "Txn", "Compaction", "Watch", "LeaseGrant", "LeaseRevoke", "LeaseKeepAlive",
        "LeaseTimeToLive", "LeaseLeases", "MemberList", "Alarm", "Status", "Defragment", "Hash", "Snapshot",
    ]

    /// The first byte picks the mode (its value mod 3), the message and the read sizes:
    /// - 0, a request body: every JSON value in it either fails with Go's wording or becomes wire
    ///   bytes that kine's own request decoder accepts and that write back as JSON which reads again
    ///   to the same JSON; and reading the body in pieces gives the same outcome as reading it whole.
    /// - 1, a response payload: it is either malformed for the message or writes as JSON that reads
    ///   back (as the client would send it) to the same JSON.
    /// - 2, HTTP/1.1 requests: the parser reads the same heads, bodies, ends and failure however
    ///   the bytes are split into reads.
    public static func gateway(_ input: [UInt8]) -> String? {
        guard let control = input.first else { return nil }
        let rest = Array(input.dropFirst())
        let message = gatewayMessages[Int(control / 3) % gatewayMessages.count]
        let sizes = readSizes(seed: control, covering: rest.count)
        switch control % 3 {
        case 0:
            guard let schema = ProtoSchemaSet.etcd["etcdserverpb.\(message)Request"] else { return "no schema for \(message)Request" }
            return requestBody(rest, as: schema, readSizes: sizes)
        case 1:
            guard let schema = ProtoSchemaSet.etcd["etcdserverpb.\(message)Response"] else { return "no schema for \(message)Response" }
            return responsePayload(rest, as: schema)
        default:
            let whole = HTTP1ParserFuzzing.events(of: rest, readSizes: [])
            let split = HTTP1ParserFuzzing.events(of: rest, readSizes: sizes)
            return whole == split ? nil : "reads of \(sizes) gave \(split), one read gave \(whole)"
        }
    }

    private static func readSizes(seed: UInt8, covering count: Int) -> [Int] {
        var sizes: [Int] = []
        var state = UInt32(seed) | 1
        var covered = 0
        while covered < count {
            state = state &* 1_103_515_245 &+ 12345
            let size = 1 + Int(state >> 16) % 7
            sizes.append(size)
            covered += size
        }
        return sizes
    }

    /// What a body's values became: wire bytes, or the failure the gateway answers.
    private enum BodyOutcome: Equatable {
        case wire([UInt8])
        case invalid(String)
        case syntax(String)
    }

    private static func requestBody(_ body: [UInt8], as schema: MessageSchema, readSizes: [Int]) -> String? {
        var whole = BodyReader(schema: schema)
        whole.read(body, endOfBody: true)
        var split = BodyReader(schema: schema)
        var offset = 0
        for size in readSizes {
            split.read(Array(body[offset..<min(body.count, offset + size)]), endOfBody: false)
            offset += size
        }
        split.read([], endOfBody: true)
        if split.outcomes != whole.outcomes { return "reads of \(readSizes) gave \(split.outcomes), one read gave \(whole.outcomes)" }

        for case .wire(let wire) in whole.outcomes {
            if let finding = wireSurvives(wire, as: schema) { return finding }
            let name = String(schema.name.dropFirst("etcdserverpb.".count))
            // A number for an enum is valid JSON (Go's decoder takes it) that kine's gRPC decoder
            // refuses when it names no value, as it refuses the same bytes from a gRPC client;
            // anything else refused means the gateway wrote bytes a gRPC client would not.
            if let check = RoundTrips.requests.first(where: { $0.0 == name })?.1, case .rejected(let error) = check(wire) {
                if case .unknownEnumValue = error { continue }
                return "\(name): kine's decoder refused the gateway's bytes \(wire): \(error)"
            }
        }
        return nil
    }

    /// A body read as the gateway reads it: value after value until the end or a syntax failure,
    /// after which nothing more is read.
    private struct BodyReader {
        let schema: MessageSchema
        var stream = JSONValueStream(limit: 1 << 20)
        var outcomes: [BodyOutcome] = []
        var failed = false

        init(schema: MessageSchema) {
            self.schema = schema
        }

        mutating func read(_ bytes: [UInt8], endOfBody: Bool) {
            guard !failed else { return }
            stream.append(bytes)
            while true {
                switch stream.next(endOfBody: endOfBody) {
                case .value(let document):
                    do throws(ProtoJSONError) {
                        outcomes.append(.wire(try ProtoJSON.wire(from: document, as: schema)))
                    } catch {
                        outcomes.append(.invalid(error.description))
                    }
                case .failure(let message):
                    outcomes.append(.syntax(message))
                    failed = true
                    return
                case .needMoreBytes, .endOfInput:
                    return
                }
            }
        }
    }

    private static func responsePayload(_ payload: [UInt8], as schema: MessageSchema) -> String? {
        do throws(ProtoJSONError) {
            _ = try ProtoJSON.json(fromWire: payload, as: schema)
        } catch {
            if case .malformedWire = error { return nil }
            return "\(schema.name): writing a response failed with \(error)"
        }
        return wireSurvives(payload, as: schema)
    }

    /// `wire` written as JSON reads back, as one value, to wire bytes that write the same JSON.
    private static func wireSurvives(_ wire: [UInt8], as schema: MessageSchema) -> String? {
        let json: [UInt8]
        do throws(ProtoJSONError) {
            json = try ProtoJSON.json(fromWire: wire, as: schema)
        } catch {
            return "\(schema.name): its own bytes \(wire) did not write as JSON: \(error)"
        }
        var stream = JSONValueStream(limit: 1 << 20)
        stream.append(json)
        let text = String(decoding: json, as: UTF8.self)
        guard case .value(let document) = stream.next(endOfBody: true) else { return "\(schema.name): its JSON \(text) does not parse" }
        guard case .endOfInput = stream.next(endOfBody: true) else { return "\(schema.name): its JSON \(text) is more than one value" }
        do throws(ProtoJSONError) {
            let again = try ProtoJSON.json(fromWire: try ProtoJSON.wire(from: document, as: schema), as: schema)
            return again == json ? nil : "\(schema.name): \(text) read back as \(String(decoding: again, as: UTF8.self))"
        } catch {
            return "\(schema.name): its JSON \(text) did not read back: \(error)"
        }
    }

    static var gatewaySeeds: [[UInt8]] {
        func request(_ message: String, _ json: String) -> [UInt8] {
            [UInt8((gatewayMessages.firstIndex(of: message) ?? 0) * 3)] + Array(json.utf8)
        }
        func response(_ message: String, _ wire: [UInt8]) -> [UInt8] {
            [UInt8((gatewayMessages.firstIndex(of: message) ?? 0) * 3 + 1)] + wire
        }
        let header = ResponseHeader(clusterID: 1, memberID: 2, revision: 9, raftTerm: 3)
        let kv = KeyValue(key: [0x61, 0], createRevision: 2, modRevision: 9, version: 4, value: [0xFF, 0x7B], lease: 7)
        return [
            request(
                "Range",
                #"{"key":"YQ==","range_end":"Yg==","limit":"10","revision":7,"sort_order":"DESCEND","sort_target":2,"keys_only":true}"#),
            request("Put", #"{"key":"L2Zvbw==","value":"YmFy","lease":"123","prev_kv":true,"ignore_value":false}"#),
            request(
                "Txn",
                #"{"compare":[{"key":"YQ==","target":"MOD","result":"LESS","mod_revision":"5"}],"success":[{"request_put":{"key":"YQ==","value":"Yg=="}}],"failure":[{"request_range":{"key":"YQ=="}}]}"#
            ),
            request(
                "Watch",
                #"{"create_request":{"key":"YQ==","start_revision":"3","filters":["NOPUT"],"prev_kv":true}} {"progress_request":{}} {"cancel_request":{"watch_id":"1"}}"#
            ),
            request("LeaseGrant", #"{"TTL":"60","ID":0}"#),
            request("LeaseKeepAlive", #"{"ID":"7587"}{"ID":"7588"}"#),
            request("Alarm", #"{"action":"ACTIVATE","memberID":"1","alarm":"NOSPACE"}"#),
            request("Compaction", #"{"revision":"4","physical":true}"#),
            request("Range", #"{"key":"L3g","limit":"abc"}"#),
            request("Range", "{\"key\":\"\\u00e9\\ud83d\\ude00\",}"),
            response("Range", ProtoEncode.rangeResponse(RangeResponse(header: header, kvs: [kv], more: true, count: 3))),
            response("Put", ProtoEncode.putResponse(PutResponse(header: header, prevKV: kv))),
            response("Watch", ProtoEncode.watchResponse(WatchResponse(header: header, watchID: 1, created: true))),
            response("LeaseGrant", ProtoEncode.leaseGrantResponse(LeaseGrantResponse(header: header, id: 5, ttl: 60))),
            [2]
                + Array(
                    "POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n{\"key\":\"YQ==\"}GET /health HTTP/1.1\r\n\r\n".utf8
                ),
            [5]
                + Array(
                    "POST /v3/watch HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\n{\"a\":\r\n3;x=y\r\n1}\n\r\n0\r\nT: v\r\n\r\n"
                        .utf8),
            [8] + Array("GET / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".utf8),
        ]
    }
}
