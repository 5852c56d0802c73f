import Foundation

/// The `process_*` family Prometheus client libraries export, read from /proc/self.
enum ProcessMetrics {
    static let started = Date().timeIntervalSince1970

    static func render() -> String {
        var text = PrometheusText()
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        // try?: without /proc (not Linux) the process figures are left out of the scrape.
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        {
            // Fields after the command name: state is field 3; utime 14, stime 15, vsize 23, rss 24.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            func field(_ number: Int) -> Double { fields.count > number - 3 ? Double(fields[number - 3]) ?? 0 : 0 }
            text.family(
                "process_cpu_seconds_total", .counter, "Total user and system CPU time spent in seconds.", (field(14) + field(15)) / ticks)
            text.family("process_virtual_memory_bytes", .gauge, "Virtual memory size in bytes.", Int(field(23)))
            text.family("process_resident_memory_bytes", .gauge, "Resident memory size in bytes.", Int(field(24)) * page)
        }
        // try?: without /proc (not Linux) the process figures are left out of the scrape.
        if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            text.family("process_open_fds", .gauge, "Number of open file descriptors.", fds.count)
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            text.family("process_max_fds", .gauge, "Maximum number of open file descriptors.", limit.rlim_cur)
        }
        text.family("process_start_time_seconds", .gauge, "Start time of the process since unix epoch in seconds.", started)
        return text.text
    }
}
