import KineHTTP2

/// Every HTTP/1.1 request on the client port: the JSON gateway under `/v3/` and `/v3beta/`, and
/// `GET`/`HEAD` of `/health`, `/version` and `/metrics`. As etcd's access controller does,
/// `OPTIONS` (a CORS preflight) gets 200 on any path.
struct ClientHTTPHandler: Sendable {
    let endpoints: HTTPEndpoints
    let gateway: JSONGateway

    func handle(_ request: HTTP1Request, _ writer: HTTP1ResponseWriter) async {
        let head = request.head
        if head.method == "OPTIONS" {
            return await writer.respond(HTTP1Response(status: 200, contentType: "", body: []))
        }
        if JSONGateway.isGatewayPath(head.path) {
            return await gateway.serve(request, writer)
        }
        guard head.method == "GET" || head.method == "HEAD" else {
            return await writer.respond(JSONGateway.plain(405, "Method Not Allowed\n"))
        }
        await writer.respond(HTTP1Response(await endpoints.respond(head.target)))
    }
}
