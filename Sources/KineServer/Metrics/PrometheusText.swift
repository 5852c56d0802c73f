/// Builds metric families in Prometheus text format (0.0.4), each with its HELP and TYPE lines,
/// for the figures kine reads when scraped rather than keeps in the registry.
struct PrometheusText {
    enum Kind: String {
        case counter, gauge
    }

    private(set) var lines: [String] = []

    /// One family; `samples` pairs a label set (`{a="b"}` or "") with its value.
    mutating func family(_ name: String, _ kind: Kind, _ help: String, _ samples: [(labels: String, value: String)]) {
        lines.append("# HELP \(name) \(help)")
        lines.append("# TYPE \(name) \(kind.rawValue)")
        for sample in samples { lines.append("\(name)\(sample.labels) \(sample.value)") }
    }

    /// A family of one unlabelled sample.
    mutating func family(_ name: String, _ kind: Kind, _ help: String, _ value: some Numeric & CustomStringConvertible) {
        family(name, kind, help, [("", value.description)])
    }

    var text: String { lines.isEmpty ? "" : lines.joined(separator: "\n") + "\n" }
}
