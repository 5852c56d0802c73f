import KineCore
import KineHA
import NIOCore
import NIOPosix

/// The witness check: whether a TCP connection to HOST:PORT opens within the timeout. A refused
/// connection counts as reachable: the address answered, so the network path is up.
enum TCPProbe {
    static func connects(host: String, port: Int, timeout: Duration) async -> Bool {
        let milliseconds = max(timeout.wholeMilliseconds, 1)
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.milliseconds(milliseconds))
        do {
            let channel: any Channel
            // try?: not an IP address: connect by host name below instead.
            if let address = try? SocketAddress(ipAddress: host, port: port) {
                channel = try await bootstrap.connect(to: address).get()
            } else {
                channel = try await bootstrap.connect(host: host, port: port).get()
            }
            // try?: the probe only needed the connection to open; a failed close changes nothing.
            try? await channel.close()
            return true
        } catch {
            return PeerRPCError.ConnectFailure(error) == .refused
        }
    }
}
