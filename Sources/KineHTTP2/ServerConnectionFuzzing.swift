import Logging
package import NIOCore

/// For the fuzz targets (`Fuzz/`): the handler the server puts on each accepted connection,
/// without a server around it, so raw bytes can be fed to it in an embedded channel.
package enum ServerConnectionFuzzing {
    package static func handler(configuration: GRPCServerConfiguration, router: any GRPCRouter) -> any ChannelHandler {
        ServerConnectionHandler(
            configuration: configuration, router: router, logger: Logger(label: "kine.fuzz", factory: { _ in SwiftLogNoOpLogHandler() }),
            registry: nil)
    }
}
