import ArgumentParser
import Router

/// Mutual TLS between MemServe processes: shared by every command that serves or dials the
/// instances' gRPC service (`instance`, `router`, `serve --peers`, `serve --transport grpc`).
/// Without these options every link is plaintext.
struct TLSArguments: ParsableArguments {
    @Option(name: .customLong("tls-cert"), help: ArgumentHelp(
        "PEM certificate chain this process presents to peers, as server and as client. It must name (subject alternative names) the host or IP address peers dial it by.",
        valueName: "PATH"))
    var certificate: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("PEM private key of --tls-cert.", valueName: "PATH"))
    var key: String?

    @Option(name: .customLong("tls-ca"), help: ArgumentHelp(
        "PEM CA certificate peers' certificates must chain to; instances refuse clients without one.", valueName: "PATH"))
    var ca: String?

    func validate() throws {
        let given = [certificate, key, ca].compactMap { $0 }.count
        if given != 0 && given != 3 { throw ValidationError("--tls-cert, --tls-key and --tls-ca go together") }
    }

    /// The checked settings, or nil for plaintext.
    func load() throws -> PeerTLS? {
        guard let certificate, let key, let ca else { return nil }
        do { return try PeerTLS(certificate: certificate, key: key, ca: ca) } catch { throw CLIError("TLS: \(error)") }
    }
}
