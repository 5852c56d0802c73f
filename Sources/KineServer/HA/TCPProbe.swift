import NIOCore
import NIOPosix

/// The witness check: whether a TCP connection to HOST:PORT opens within the timeout (a
/// refused connection counts as reachable: something answered at that address).
enum TCPProbe {
    static func connects(host: String, port: Int, timeout: Duration) async -> Bool {
        let milliseconds = max(Int64(timeout.components.seconds) * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000, 1)
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(milliseconds))
        do {
            let channel = try await bootstrap.connect(host: host, port: port).get()
            try? await channel.close()
            return true
        } catch let error as IOError where error.errnoCode == ECONNREFUSED {
            return true
        } catch {
            return false
        }
    }
}
