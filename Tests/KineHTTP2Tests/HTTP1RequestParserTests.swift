import Testing

@testable import KineHTTP2

@Suite("HTTP/1.1 request parser")
struct HTTP1RequestParserTests {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    private func bodies(_ events: [HTTP1RequestParser.Event]) -> String {
        events.compactMap { event -> String? in
            if case .body(let bytes) = event { return String(decoding: bytes, as: UTF8.self) }
            return nil
        }.joined()
    }

    @Test func headWithoutBody() {
        var parser = HTTP1RequestParser()
        let events = parser.feed(bytes("GET /version?x=1 HTTP/1.1\r\nHost: x\r\nX-Thing:  spaced  \r\n\r\n"))
        guard case .head(let head) = events.first else {
            Issue.record("no head: \(events)")
            return
        }
        #expect(head.method == "GET")
        #expect(head.path == "/version")
        #expect(head.target == "/version?x=1")
        #expect(head.header("x-thing") == "spaced")
        #expect(head.keepAlive)
        #expect(events.last == .end)
        #expect(parser.isWaitingForResponse)
    }

    @Test func contentLengthBodyArrivingInPieces() {
        var parser = HTTP1RequestParser()
        var events = parser.feed(bytes("POST /v3/kv/range HTTP/1.1\r\nContent-Length: 11\r\n\r\n{\"ke"))
        #expect(events.count == 2)
        events += parser.feed(bytes("y\":\"L3g"))
        events += parser.feed(bytes("\"}GET"))
        #expect(bodies(events) == "{\"key\":\"L3g")
        #expect(events.last == .end)
        // The pipelined bytes wait for the answer.
        #expect(parser.nextRequest().isEmpty)
    }

    @Test func chunkedBodyWithExtensionsAndTrailer() {
        var parser = HTTP1RequestParser()
        let request =
            "POST /v3/watch HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "4;name=v\r\n{\"a\"\r\n" + "A\r\n:1}{\"b\":2}\r\n" + "0\r\nX-Trailer: y\r\n\r\n"
        var events: [HTTP1RequestParser.Event] = []
        // Byte by byte: every split point must work.
        for byte in bytes(request) { events += parser.feed([byte]) }
        #expect(bodies(events) == "{\"a\":1}{\"b\":2}")
        #expect(events.last == .end)
    }

    @Test func pipelinedRequestsOneAtATime() {
        var parser = HTTP1RequestParser()
        let first = parser.feed(bytes("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n"))
        #expect(first.count == 2)
        let second = parser.nextRequest()
        guard case .head(let head) = second.first else {
            Issue.record("no second head")
            return
        }
        #expect(head.path == "/b")
        #expect(!head.keepAlive)
    }

    @Test func expectContinueAndHTTP10() {
        var parser = HTTP1RequestParser()
        let events = parser.feed(bytes("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"))
        guard case .head(let head) = events.first else {
            Issue.record("no head")
            return
        }
        #expect(head.expectsContinue)
        #expect(!head.keepAlive)
    }

    @Test(arguments: [
        ("GET\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n bad: fold\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc", 400),
    ])
    func malformed(request: String, status: Int) {
        var parser = HTTP1RequestParser()
        let events = parser.feed(bytes(request))
        guard case .failure(let got, _) = events.last else {
            Issue.record("accepted: \(events)")
            return
        }
        #expect(got == status)
        // Nothing more is read from a failed connection.
        #expect(parser.feed(bytes("GET / HTTP/1.1\r\n\r\n")).isEmpty)
    }

    @Test func oversizedHead() {
        var parser = HTTP1RequestParser()
        let events = parser.feed(bytes("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: HTTP1RequestParser.maxHeadSize)))
        #expect(events.last.map { if case .failure(431, _) = $0 { true } else { false } } == true)
    }
}
