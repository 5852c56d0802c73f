import ArgumentParser

/// `kine`: an etcd v3 server that keeps its data in PostgreSQL. Without a subcommand it serves
/// (`serve`), so Go kine's command lines work unchanged; `kine ha …` talks to a running node's
/// HA port.
@main
struct KineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kine",
        abstract: "etcd v3 API server backed by PostgreSQL (a Swift Kine).",
        subcommands: [ServeCommand.self, HACommand.self, HashKVCommand.self, RestoreCommand.self],
        defaultSubcommand: ServeCommand.self)
}
