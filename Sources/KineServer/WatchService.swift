import KineCore
import KineHTTP2
import KineProto
import KineStore

/// `/etcdserverpb.Watch/Watch`: one WatchSession per stream.
struct WatchService: Sendable {
    let store: KineStore
    let identity: ServerIdentity
    /// Go kine's `--watch-progress-notify-interval`.
    let progressInterval: Duration

    func methods() -> [String: GRPCMethod] {
        ["/etcdserverpb.Watch/Watch": .bidirectional { requests, responses, _ throws(GRPCStatus) in
            try await watch(requests, responses)
        }]
    }

    func watch(_ requests: GRPCRequestStream, _ responses: GRPCResponseWriter) async throws(GRPCStatus) {
        let identity = self.identity
        let session = WatchSession(hub: store.watchHub) { response in
            var response = response
            identity.fill(&response.header)
            try await responses.write(ProtoEncode.watchResponse(response))
        }
        let interval = progressInterval
        let failure: GRPCStatus? = await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // A failed send means the stream is gone; the request loop ends with it.
                try? await session.run()
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    session.progressTick()
                }
            }
            var failure: GRPCStatus?
            for await message in requests {
                let request: WatchRequest
                do throws(GRPCStatus) {
                    request = try StatusMapping.decode(message, ProtoDecode.watchRequest)
                } catch {
                    failure = error
                    break
                }
                await session.handle(request)
            }
            if failure == nil {
                // etcd keeps a half-closed Watch stream open and goes on sending events; it ends
                // when the client resets the stream (this task is cancelled) or goes away.
                await withTaskCancellationHandler {
                    _ = await group.next()
                } onCancel: {
                    session.close()
                }
            }
            session.close()
            group.cancelAll()
            return failure
        }
        if let failure { throw failure }
    }
}
