import KineCore
import KineHTTP2
import KineProto
import KineStore
import KineSync
import Synchronization

/// `/etcdserverpb.Watch/Watch`: one WatchSession per stream and store epoch.
///
/// When the store is replaced (HA), the stream's watches go on in the new epoch when it says they
/// can (`WatchContinuity`: a promotion whose store holds everything they were sent); otherwise
/// the stream's session cancels every watch as compacted at the new epoch's start revision and a
/// new session on the new store takes the stream's next requests. While no store serves, open
/// watches wait for the next epoch; a create in that gap ends the stream with etcd's "no leader"
/// (clients retry).
struct WatchService: Sendable {
    let stores: StoreHandle
    let identity: ServerIdentity
    /// Go kine's `--watch-progress-notify-interval`.
    let progressInterval: Duration
    let gate: AuthGate

    func methods() -> [String: GRPCMethod] {
        [
            "/etcdserverpb.Watch/Watch": .bidirectional { requests, responses, context throws(GRPCStatus) in
                try await watch(requests, responses, context)
            }
        ]
    }

    func watch(_ requests: GRPCRequestStream, _ responses: GRPCResponseWriter, _ context: GRPCCallContext) async throws(GRPCStatus) {
        let gate = self.gate
        let identity = self.identity
        let sessions = StreamSessions { response in
            var response = response
            identity.fill(&response.header)
            try await responses.write(ProtoEncode.watchResponse(response))
        }
        let token = stores.observe { change in sessions.storeChanged(change) }
        defer { stores.stopObserving(token) }
        let interval = progressInterval
        let stores = self.stores
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    // try?: cancellation ends the stream, and with it this ticker; the loop checks it.
                    try? await Task.sleep(for: interval)
                    sessions.current?.progressTick()
                }
            }
            group.addTask {
                // etcd keeps a half-closed Watch stream open and goes on sending events, so the
                // end of the requests ends nothing; a malformed one ends the stream.
                for await message in requests {
                    do throws(GRPCStatus) {
                        let request = try StatusMapping.decode(message, ProtoDecode.watchRequest)
                        let session = try sessions.session(for: stores)
                        guard case .create(let create) = request else {
                            await session.handle(request)
                            continue
                        }
                        switch await Self.admit(create, context, gate: gate, stores: stores) {
                        case .refused(let reason): session.refuse(create, reason: reason)
                        case .admitted(let current?): await session.create(create, current: current)
                        case .admitted(nil): await session.handle(request)
                        }
                    } catch {
                        sessions.fail(error)
                        return
                    }
                }
            }
            // Until the client resets the stream (this task is cancelled), a send fails (it went
            // away), a request is malformed, or the store stops serving.
            await withTaskCancellationHandler {
                await sessions.runAll()
            } onCancel: {
                sessions.closeAll()
            }
            group.cancelAll()
        }
        if let failure = sessions.failure { throw failure }
    }
}

extension WatchService {
    enum Admission {
        case refused(reason: String)
        /// With the revision the read barrier saw published (nil when it could not be read).
        case admitted(current: Int64?)
    }

    /// Whether the caller may watch what `create` asks for: read permission on the range, checked
    /// when the watch is created (etcd does not check it afterwards), against an auth state at
    /// least as new as a read barrier started after the request, so a revoke acknowledged on any
    /// node binds it. The barrier's revision is the create's "now". A process alone on its
    /// database needs no barrier (`KineStore.localNow`). etcd checks a watch with range
    /// end "\0" (every key from `key` on) as if it were the key alone; kine checks the whole
    /// range (docs/compatibility.md).
    static func admit(_ create: WatchCreateRequest, _ context: GRPCCallContext, gate: AuthGate, stores: StoreHandle) async -> Admission {
        let key = create.key.isEmpty ? [0] : create.key
        var current: Int64?
        do throws(EtcdError) {
            let store = try stores.current()
            let state: AuthState
            if let now = try await store.localNow() {
                // Alone on the database: this process's auth copy is current too.
                current = now
                state = try await store.auth.current()
            } else {
                do throws(EtcdError) {
                    let reading = try await store.watchHub.syncReading()
                    current = reading.revision
                    state = try await store.auth.state(atLeast: reading.authGeneration)
                } catch {
                    // Without the database, the copy this process has is the best there is.
                    state = try await store.auth.current()
                }
            }
            try gate.authorize(context, [.read(key: key, rangeEnd: create.rangeEnd)], in: state, auth: store.auth)
            return .admitted(current: current)
        } catch {
            // etcd turns any failure of the check (a bad token too) into "permission denied".
            return .refused(reason: "rpc error: code = PermissionDenied desc = \(EtcdError.permissionDenied.message)")
        }
    }
}

/// The sessions of one Watch stream: the current epoch's, and earlier ones still sending their
/// cancellations. `runAll` returns when the stream is done (closed, a send failed, or no store).
private final class StreamSessions: Sendable {
    private struct State: Sendable {
        var current: (epoch: UInt64, session: WatchSession)?
        var failure: GRPCStatus?
        var closed = false
        var started: [WatchSession] = []
        var waiter: Completion<Void>?
    }

    private let send: WatchSession.Sender
    private let state = Mutex(State())

    init(send: @escaping WatchSession.Sender) {
        self.send = send
    }

    var current: WatchSession? { state.withLock { $0.current?.session } }
    var failure: GRPCStatus? { state.withLock { $0.failure } }

    /// The session of the current epoch, created on first use.
    func session(for stores: StoreHandle) throws(GRPCStatus) -> WatchSession {
        let epoch: StoreHandle.Epoch
        do {
            epoch = try stores.currentEpoch()
        } catch {
            throw StatusMapping.status(error)
        }
        let (session, waiter) = state.withLock { state -> (WatchSession, Completion<Void>?) in
            if let current = state.current, current.epoch == epoch.number { return (current.session, nil) }
            if let session = Self.carryOver(&state, to: epoch) { return (session, nil) }
            let session = WatchSession(hub: epoch.store.watchHub, send: send)
            state.current = (epoch.number, session)
            state.started.append(session)
            defer { state.waiter = nil }
            return (session, state.waiter)
        }
        waiter?.complete()
        return session
    }

    func storeChanged(_ change: StoreHandle.Change) {
        switch change {
        case .installed(let epoch):
            state.withLock { state in
                guard let current = state.current, current.epoch != epoch.number else { return }
                _ = Self.carryOver(&state, to: epoch)
            }
        case .withdrawn(let reason, let endStreams):
            if endStreams { fail(StatusMapping.status(reason)) }
        }
    }

    /// Moves the current session into `epoch`: its watches go on there when the epoch directly
    /// follows the session's and says they can; otherwise they are cancelled as compacted and the
    /// stream gets a new session on its next request. Returns the session that goes on.
    private static func carryOver(_ state: inout State, to epoch: StoreHandle.Epoch) -> WatchSession? {
        guard let current = state.current else { return nil }
        if let continuity = epoch.continuity, current.epoch + 1 == epoch.number,
            current.session.continueEpoch(on: epoch.store.watchHub, continuity: continuity)
        {
            state.current = (epoch.number, current.session)
            return current.session
        }
        current.session.endEpoch(compactRevision: epoch.startRevision)
        state.current = nil
        return nil
    }

    /// Ends the stream with `status`.
    func fail(_ status: GRPCStatus) {
        state.withLock { $0.failure = $0.failure ?? status }
        closeAll()
    }

    func closeAll() {
        let sessions = state.withLock { $0.started }
        for session in sessions { session.close() }
        finish()
    }

    private func finish() {
        let waiter = state.withLock { state in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.complete()
    }

    /// Runs every session as it is created, until the stream is closed or a send fails (the
    /// stream is gone), then waits for all of them to end.
    func runAll() async {
        await withTaskGroup(of: Void.self) { group in
            var launched = 0
            while true {
                let (sessions, closed) = state.withLock { ($0.started, $0.closed) }
                for session in sessions.dropFirst(launched) {
                    group.addTask { [self] in
                        do {
                            try await session.run()
                        } catch {
                            closeAll()
                        }
                    }
                }
                launched = sessions.count
                if closed { break }
                await waitForChange(seen: launched)
            }
            let sessions = state.withLock { $0.started }
            for session in sessions { session.close() }
            await group.waitForAll()
        }
    }

    /// Returns once a session beyond the first `seen` exists or the stream is closed.
    private func waitForChange(seen: Int) async {
        await Completion<Void>.wait { completion in
            let now = state.withLock { state in
                if state.closed || state.started.count > seen { return true }
                state.waiter = completion
                return false
            }
            if now { completion.complete() }
        }
    }
}
