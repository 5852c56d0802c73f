import Dispatch
import Foundation
import KineSQL
import KineSync
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// LISTEN/NOTIFY on one dedicated, non-pipelined connection driven by its own thread. The thread
/// waits with `poll()` on the connection's socket and a wake-up pipe, reads with
/// `PQconsumeInput`/`PQnotifies`, and re-issues LISTEN for every subscribed channel after a
/// reconnect or a re-point. Started on the first subscription.
final class PostgresListener: Sendable {
    private struct Subscriber {
        var continuation: AsyncStream<String>.Continuation
    }

    private struct State {
        var configuration: PostgresConfiguration
        var generation = 0
        var started = false
        var isShutdown = false
        var nextID: UInt64 = 1
        var subscribers: [String: [UInt64: Subscriber]] = [:]
        /// Subscriptions waiting for their channel's LISTEN to be active.
        var waiters: [String: [Completion<Result<Void, SQLError>>]] = [:]
        /// The listening session's backend pid while every subscribed channel is listened to.
        var listeningPID: Int32?
    }

    private let state: Mutex<State>
    private let options: PostgresClient.Options
    private let logger: Logger
    private let exited = DispatchGroup()
    /// Wake-up pipe: [read end, write end], non-blocking.
    private let wakeFDs: (read: Int32, write: Int32)

    init(configuration: PostgresConfiguration, options: PostgresClient.Options, logger: Logger) {
        state = Mutex(State(configuration: configuration))
        self.options = options
        self.logger = logger
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
            _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        }
        wakeFDs = (fds[0], fds[1])
    }

    deinit {
        for fd in [wakeFDs.read, wakeFDs.write] where fd >= 0 {
            #if canImport(Glibc)
            _ = Glibc.close(fd)
            #elseif canImport(Darwin)
            _ = Darwin.close(fd)
            #endif
        }
    }

    /// The backend pid of the session that listens, while it listens to every subscribed
    /// channel; nil while it is (re)connecting.
    var listeningBackendPID: Int32? { state.withLock { $0.listeningPID } }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeFDs.write, &byte, 1)
    }

    func subscribe(channel: String, whenActive: Completion<Result<Void, SQLError>>?) -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .unbounded)
        let (id, start, rejected) = state.withLock { state -> (UInt64, Bool, Bool) in
            guard !state.isShutdown else { return (0, false, true) }
            let id = state.nextID
            state.nextID += 1
            state.subscribers[channel, default: [:]][id] = Subscriber(continuation: continuation)
            if let whenActive { state.waiters[channel, default: []].append(whenActive) }
            let start = !state.started
            state.started = true
            return (id, start, false)
        }
        if rejected {
            continuation.finish()
            whenActive?.complete(.failure(SQLError(kind: .cancelled, message: "client is shut down")))
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            self.state.withLock { state in
                state.subscribers[channel]?[id] = nil
                if state.subscribers[channel]?.isEmpty == true { state.subscribers[channel] = nil }
            }
            self.wake()
        }
        if start {
            exited.enter()
            let thread = Thread { [self] in
                self.listenerMain()
                self.exited.leave()
            }
            thread.name = "kine-pg-listen"
            thread.start()
        } else {
            wake()
        }
        return stream
    }

    func subscribeWhenActive(channel: String) async throws(SQLError) -> AsyncStream<String> {
        var stream: AsyncStream<String>?
        let result = await Completion<Result<Void, SQLError>>.wait { completion in
            stream = subscribe(channel: channel, whenActive: completion)
        }
        try result.get()
        guard let stream else { throw SQLError(kind: .cancelled, message: "no stream") }
        return stream
    }

    func repoint(to configuration: PostgresConfiguration) {
        state.withLock { state in
            state.configuration = configuration
            state.generation += 1
        }
        wake()
    }

    func shutdown() {
        let (subscribers, waiters) = state.withLock { state in
            state.isShutdown = true
            defer {
                state.subscribers = [:]
                state.waiters = [:]
            }
            return (state.subscribers.values.flatMap(\.values), state.waiters.values.flatMap { $0 })
        }
        for subscriber in subscribers { subscriber.continuation.finish() }
        for waiter in waiters { waiter.complete(.failure(SQLError(kind: .cancelled, message: "client is shut down"))) }
        wake()
    }

    func waitForExit() async {
        await Completion<Void>.wait { done in
            exited.notify(queue: .global()) { done.complete() }
        }
    }

    // MARK: - Thread

    private func listenerMain() {
        var logger = self.logger
        logger[metadataKey: PostgresMetadataKey.connection.rawValue] = "listen"
        var connection: PGConnection?
        var listening = Set<String>()
        var backoff = options.reconnectBackoffInitial
        defer { connection?.close() }

        while true {
            let (shutdown, generation, configuration, wanted) = state.withLock {
                ($0.isShutdown, $0.generation, $0.configuration, Set($0.subscribers.keys))
            }
            if shutdown { return }

            if let current = connection, current.generation != generation {
                current.close()
                connection = nil
            }
            if connection == nil { state.withLock { $0.listeningPID = nil } }
            if connection == nil {
                listening = []
                switch PGConnection.open(configuration, generation: generation, pipelined: false, logger: logger) {
                case .success(let opened):
                    connection = opened
                    backoff = options.reconnectBackoffInitial
                case .failure(let error):
                    logger.debug("listen connect failed", metadata: .init([.target: "\(configuration)", .error: "\(error.message)"]))
                    waitForInput(socket: -1, timeoutMilliseconds: Int32(clamping: backoff.milliseconds))
                    backoff = min(backoff * 2, options.reconnectBackoffMax)
                    continue
                }
            }
            guard let current = connection else { continue }

            // Bring the server's LISTEN set in line with the subscriptions.
            var failed = false
            for channel in wanted.subtracting(listening).sorted() {
                switch current.exec("LISTEN " + quoteIdentifier(channel)) {
                case .success:
                    listening.insert(channel)
                    logger.debug("listening", metadata: .init([.channel: "\(channel)"]))
                case .failure(let error) where error.kind == .connection:
                    failed = true
                case .failure(let error):
                    let waiters = state.withLock { $0.waiters.removeValue(forKey: channel) ?? [] }
                    for waiter in waiters { waiter.complete(.failure(error)) }
                }
                if failed { break }
            }
            if !failed {
                for channel in listening.subtracting(wanted) {
                    if case .failure(let error) = current.exec("UNLISTEN " + quoteIdentifier(channel)), error.kind == .connection {
                        failed = true
                        break
                    }
                    listening.remove(channel)
                }
            }
            if failed {
                current.close()
                connection = nil
                continue
            }
            let active = state.withLock { state -> [Completion<Result<Void, SQLError>>] in
                state.listeningPID = listening == wanted && !listening.isEmpty ? current.backendPID : nil
                var ready: [Completion<Result<Void, SQLError>>] = []
                for channel in listening {
                    if let waiters = state.waiters.removeValue(forKey: channel) { ready += waiters }
                }
                return ready
            }
            for waiter in active { waiter.complete(.success(())) }

            deliver(current.takeNotifications())
            waitForInput(socket: current.socket, timeoutMilliseconds: 1000)
            if !current.consumeInput() {
                logger.debug("listen connection lost", metadata: .init([.error: "\(current.lastErrorMessage)"]))
                deliver(current.takeNotifications())
                current.close()
                connection = nil
                state.withLock { $0.listeningPID = nil }
                continue
            }
            deliver(current.takeNotifications())
        }
    }

    private func deliver(_ notifications: [(channel: String, payload: String)]) {
        guard !notifications.isEmpty else { return }
        let targets: [(AsyncStream<String>.Continuation, String)] = state.withLock { state in
            var out: [(AsyncStream<String>.Continuation, String)] = []
            for notification in notifications {
                for subscriber in state.subscribers[notification.channel]?.values ?? [:].values {
                    out.append((subscriber.continuation, notification.payload))
                }
            }
            return out
        }
        for (continuation, payload) in targets { continuation.yield(payload) }
    }

    /// Waits until the socket is readable, the wake-up pipe is written, or the timeout passes;
    /// drains the pipe.
    private func waitForInput(socket: Int32, timeoutMilliseconds: Int32) {
        var fds = [pollfd(fd: wakeFDs.read, events: Int16(POLLIN), revents: 0)]
        if socket >= 0 { fds.append(pollfd(fd: socket, events: Int16(POLLIN), revents: 0)) }
        _ = poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
        if fds[0].revents & Int16(POLLIN) != 0 {
            var buffer = [UInt8](repeating: 0, count: 64)
            while read(wakeFDs.read, &buffer, buffer.count) > 0 {}
        }
    }
}

/// Quotes an SQL identifier: wraps it in double quotes and doubles embedded ones.
func quoteIdentifier(_ name: String) -> String {
    "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}
