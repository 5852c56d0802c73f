import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import KineHTTP2

@Suite("gRPC server and client over HTTP/2")
struct IntegrationTests {
    @Test("unary echo")
    func unaryEcho() async throws {
        try await withServer { _, port, _ in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: port)
            let reply = try await client.unary(path: "/test.Echo/Unary", request: [1, 2, 3])
            #expect(reply == [1, 2, 3])
            let empty = try await client.unary(path: "/test.Echo/Unary", request: [])
            #expect(empty == [])
            let meta = try await client.unary(
                path: "/test.Echo/Metadata", request: [], metadata: ["x-test": "hello"], timeout: .seconds(30))
            #expect(String(decoding: meta, as: UTF8.self) == "hello true /test.Echo/Metadata")
            await client.close()
        }
    }

    @Test("1.5 MiB request and response")
    func largeMessages() async throws {
        try await withServer { _, port, _ in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: port)
            let big = (0..<(1_572_864)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let reply = try await client.unary(path: "/test.Echo/Unary", request: big)
            #expect(reply == big)
            // Exactly at the limit passes; one byte more is RESOURCE_EXHAUSTED with grpc-go's wording.
            let limit = GRPCServerConfiguration.defaultMaxReceiveMessageSize
            let atLimit = try await client.unary(path: "/test.Echo/Unary", request: Array(repeating: 1, count: limit))
            #expect(atLimit.count == limit)
            let outcome = await client.unaryOutcome(path: "/test.Echo/Unary", request: Array(repeating: 1, count: limit + 1))
            #expect(
                outcome.result.failure
                    == GRPCStatus(code: 8, message: "grpc: received message larger than max (\(limit + 1) vs. \(limit))"))
            // The connection still works.
            #expect(try await client.unary(path: "/test.Echo/Unary", request: [5]) == [5])
            await client.close()
        }
    }

    @Test("200 concurrent unary calls on one connection")
    func concurrentUnary() async throws {
        try await withServer { _, port, _ in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: port)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<200 {
                    group.addTask {
                        let request = Array("call-\(index)".utf8) + Array(repeating: UInt8(index & 0xFF), count: index * 50)
                        let reply = try await client.unary(path: "/test.Echo/Unary", request: request)
                        #expect(reply == request)
                    }
                }
                try await group.waitForAll()
            }
            await client.close()
        }
    }

    @Test("bidirectional echo with interleaved messages")
    func bidiEcho() async throws {
        try await withServer { _, port, _ in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: port)
            let call = client.openBidirectional(path: "/test.Echo/Stream")
            var iterator = call.responses.makeAsyncIterator()
            for index in 0..<50 {
                let message = Array("message \(index)".utf8)
                try await call.send(message)
                let echoed = try await iterator.next()
                #expect(echoed == message)
            }
            // A burst, then half-close: all echoed, then OK.
            for index in 0..<20 { try await call.send([UInt8(index)]) }
            call.finish()
            var rest: [[UInt8]] = []
            while let message = try await iterator.next() { rest.append(message) }
            #expect(rest == (0..<20).map { [UInt8($0)] })
            #expect(await call.status == .ok)

            // Two streams at once on the same connection, interleaved.
            let a = client.openBidirectional(path: "/test.Echo/Stream")
            let b = client.openBidirectional(path: "/test.Echo/Stream")
            var ia = a.responses.makeAsyncIterator()
            var ib = b.responses.makeAsyncIterator()
            for index in 0..<10 {
                try await a.send([1, UInt8(index)])
                try await b.send([2, UInt8(index)])
                #expect(try await ib.next() == [2, UInt8(index)])
                #expect(try await ia.next() == [1, UInt8(index)])
            }
            a.finish()
            b.finish()
            #expect(await a.status == .ok)
            #expect(await b.status == .ok)
            await client.close()
        }
    }

    @Test("server-side backpressure and flow control on a flooding stream")
    func flood() async throws {
        try await withServer { _, port, _ in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: port)
            let call = client.openBidirectional(path: "/test.Echo/Flood")
            try await call.send([2, 0])  // 512 messages of 16 KiB = 8 MiB
            call.finish()
            var count = 0
            for try await message in call.responses {
                #expect(message.count == 16_384)
                #expect(message.first == UInt8(truncatingIfNeeded: count))
                count += 1
            }
            #expect(count == 512)
            #expect(await call.status == .ok)
            await client.close()
        }
    }

    @Test("handler error → Trailers-Only with exact status and message")
    func trailersOnly() async throws {
        try await withServer { _, port, _ in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: port)
            let outcome = await client.unaryOutcome(path: "/test.Echo/Fail", request: [1])
            #expect(outcome.trailersOnly)
            #expect(outcome.httpStatus == 200)
            #expect(outcome.result.failure == TestRouter.failure)

            let stream = client.openBidirectional(path: "/test.Echo/StreamFail")
            #expect(await stream.status == GRPCStatus(code: 5, message: "nope"))

            // Error after a message: normal trailers, the message arrives first.
            let after = client.openBidirectional(path: "/test.Echo/StreamFailAfter")
            var got: [[UInt8]] = []
            do {
                for try await message in after.responses { got.append(message) }
                Issue.record("expected an error")
            } catch let status as GRPCStatus {
                #expect(status == GRPCStatus(code: 11, message: "after one"))
            }
            #expect(got == [[7, 7]])
            await client.close()
        }
    }

    @Test("unknown service or method → UNIMPLEMENTED")
    func unknownMethod() async throws {
        try await withServer { _, port, _ in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: port)
            let method = await client.unaryOutcome(path: "/test.Echo/Nope", request: [])
            #expect(method.result.failure == GRPCStatus(code: 12, message: "unknown method Nope for service test.Echo"))
            #expect(method.trailersOnly)
            let service = await client.unaryOutcome(path: "/other.Svc/Get", request: [])
            #expect(service.result.failure == GRPCStatus(code: 12, message: "unknown service other.Svc"))
            await client.close()
        }
    }

    @Test("deadline exceeded → 4 and the handler is cancelled")
    func deadline() async throws {
        try await withServer { _, port, router in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: port)
            let start = ContinuousClock.now
            let outcome = await client.unaryOutcome(path: "/test.Echo/Sleep", request: [], timeout: .milliseconds(200))
            #expect(outcome.result.failure?.code == 4)
            #expect(ContinuousClock.now - start < .seconds(5))
            #expect(await router.probe.wait { $0.cancelledCount == 1 })
            await client.close()
        }
    }

    @Test("client cancel (RST_STREAM) cancels the server handler task")
    func clientCancel() async throws {
        try await withServer { _, port, router in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: port)
            let task = Task {
                await client.unaryOutcome(path: "/test.Echo/Sleep", request: [])
            }
            #expect(await router.probe.wait { $0.startedCount == 1 })
            task.cancel()
            let outcome = await task.value
            #expect(outcome.result.failure?.code == 1)
            #expect(await router.probe.wait { $0.cancelledCount == 1 })

            // Same for a stream.
            let call = client.openBidirectional(path: "/test.Echo/StreamSleep")
            var iterator = call.responses.makeAsyncIterator()
            #expect(try await iterator.next() == [1])
            call.cancel()
            #expect(await router.probe.wait { $0.cancelledCount == 2 })
            #expect(await call.status.code == 1)
            // The connection is still healthy.
            #expect(try await client.unary(path: "/test.Echo/Unary", request: [3]) == [3])
            await client.close()
        }
    }

    @Test("HTTP/1.1 GET on the same port")
    func http1() async throws {
        try await withServer(configure: { configuration in
            configuration.http1Handler = simpleHTTP1Handler { path in
                path == "/health"
                    ? (200, "application/json", Array(#"{"health":"true","reason":""}"#.utf8))
                    : (404, "text/plain", Array("404 page not found\n".utf8))
            }
        }) { _, port, _ in
            let (health, closed) = try await rawExchange(
                port: port, bytes: Array("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8), readTimeout: .seconds(5))
            let text = String(decoding: health, as: UTF8.self)
            #expect(closed)
            #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(text.contains("Content-Type: application/json\r\n"))
            #expect(text.hasSuffix("\r\n\r\n{\"health\":\"true\",\"reason\":\"\"}"))
            // Kept alive: two pipelined requests get two answers in order; the second asks to close.
            let (both, closedAfterTwo) = try await rawExchange(
                port: port,
                bytes: Array("GET /nope HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\nConnection: close\r\n\r\n".utf8),
                readTimeout: .seconds(5))
            let answers = String(decoding: both, as: UTF8.self)
            #expect(closedAfterTwo)
            #expect(answers.hasPrefix("HTTP/1.1 404 "))
            #expect(answers.components(separatedBy: "HTTP/1.1 ").count == 3)
            #expect(answers.hasSuffix("{\"health\":\"true\",\"reason\":\"\"}"))
            // A POST body framed by chunked coding is read, and the method refused.
            let (post, _) = try await rawExchange(
                port: port,
                bytes: Array("POST /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n".utf8),
                readTimeout: .seconds(5))
            #expect(String(decoding: post, as: UTF8.self).hasPrefix("HTTP/1.1 405 "))
            // gRPC on the same port still works.
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: port)
            #expect(try await client.unary(path: "/test.Echo/Unary", request: [8]) == [8])
            await client.close()
        }
        // No handler configured → 404.
        try await withServer { _, port, _ in
            let (reply, _) = try await rawExchange(
                port: port, bytes: Array("GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n".utf8), readTimeout: .seconds(5))
            #expect(String(decoding: reply, as: UTF8.self).hasPrefix("HTTP/1.1 404 "))
        }
    }

    @Test("unix domain socket listener")
    func unixSocket() async throws {
        let path = "/tmp/kine-http2-test-\(UInt32.random(in: 0...UInt32.max)).sock"
        try await withServer(configure: { $0.target = .unixSocket(path: path) }) { _, _, _ in
            let client = try await GRPCClientConnection.connect(unixSocketPath: path)
            #expect(try await client.unary(path: "/test.Echo/Unary", request: [1, 1]) == [1, 1])
            await client.close()
        }
    }

    @Test("server sends SETTINGS first")
    func settingsFirst() async throws {
        try await withServer { _, port, _ in
            let (reply, _) = try await rawExchange(port: port, bytes: HTTP1.http2Preface + [0, 0, 0, 4, 0, 0, 0, 0, 0])
            // Frame header: length(3) type(1) flags(1) stream(4); type 4 = SETTINGS.
            #expect(reply.count >= 9)
            if reply.count >= 9 { #expect(reply[3] == 4) }
        }
    }

    @Test("graceful shutdown lets an in-flight unary call finish")
    func gracefulShutdown() async throws {
        let router = TestRouter()
        var configuration = GRPCServerConfiguration(target: .tcp(host: "127.0.0.1", port: 0))
        configuration.shutdownGracePeriod = .seconds(3)
        let server = GRPCServer(configuration: configuration, router: router, logger: .init(label: "t"))
        let port = try await server.start().port ?? 0
        let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: port)
        let stream = client.openBidirectional(path: "/test.Echo/Stream")
        try await stream.send([1])
        var iterator = stream.responses.makeAsyncIterator()
        #expect(try await iterator.next() == [1])
        let slow = Task { await client.unaryOutcome(path: "/test.Echo/Sleep", request: []) }
        #expect(await router.probe.wait { $0.startedCount == 1 })
        let start = ContinuousClock.now
        await server.shutdown()
        // The stream was ended with UNAVAILABLE; the sleeping unary call was given the grace period
        // and then the connection closed.
        #expect(await stream.status.code == 14)
        let outcome = await slow.value
        #expect(outcome.result.failure != nil)
        #expect(ContinuousClock.now - start >= .seconds(2))
        #expect(server.connectionCount == 0)
        await client.close()
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
