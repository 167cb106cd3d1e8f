import Foundation
import GRPCNIOTransportHTTP2
import NIOSSL

/// Why the TLS settings between MemServe processes cannot be used.
public enum PeerTLSError: Error, Equatable, CustomStringConvertible {
    case unreadable(option: String, path: String, reason: String)
    case invalid(option: String, path: String, reason: String)
    case mismatch(reason: String)

    public var description: String {
        switch self {
        case let .unreadable(option, path, reason): "\(option) \(path): cannot read it (\(reason))"
        case let .invalid(option, path, reason): "\(option) \(path): \(reason)"
        case let .mismatch(reason): "the certificate and key do not form a TLS identity: \(reason)"
        }
    }
}

/// Mutual TLS between MemServe processes (instances, routers, front ends): each side presents
/// its certificate chain and verifies the other's against one CA. Servers require a client
/// certificate; clients also check that the server's certificate names the host or IP address
/// they dialled. The PEM files are read and checked once, when the settings are made, so a bad
/// path or a key that does not match its certificate fails at start-up, not on first contact.
public struct PeerTLS: Sendable {
    /// PEM bytes of the leaf certificate (and any intermediates), the private key, and the CA.
    let chain: [UInt8]
    let key: [UInt8]
    let ca: [UInt8]
    /// The files the settings came from, for messages.
    public let certificatePath: String
    public let caPath: String

    public init(certificate: String, key: String, ca: String) throws(PeerTLSError) {
        chain = try Self.read(certificate, option: "--tls-cert")
        self.key = try Self.read(key, option: "--tls-key")
        self.ca = try Self.read(ca, option: "--tls-ca")
        certificatePath = certificate
        caPath = ca
        let certificates: [NIOSSLCertificate], privateKey: NIOSSLPrivateKey, roots: [NIOSSLCertificate]
        do { certificates = try NIOSSLCertificate.fromPEMBytes(chain) } catch {
            throw .invalid(option: "--tls-cert", path: certificate, reason: "not a PEM certificate (\(error))")
        }
        if certificates.isEmpty { throw .invalid(option: "--tls-cert", path: certificate, reason: "holds no certificate") }
        do { privateKey = try NIOSSLPrivateKey(bytes: self.key, format: .pem) } catch {
            throw .invalid(option: "--tls-key", path: key, reason: "not a PEM private key (\(error))")
        }
        do { roots = try NIOSSLCertificate.fromPEMBytes(self.ca) } catch {
            throw .invalid(option: "--tls-ca", path: ca, reason: "not a PEM certificate (\(error))")
        }
        if roots.isEmpty { throw .invalid(option: "--tls-ca", path: ca, reason: "holds no certificate") }
        // BoringSSL checks that the key belongs to the leaf when a context is made.
        var check = TLSConfiguration.makeServerConfiguration(certificateChain: certificates.map { .certificate($0) },
                                                             privateKey: .privateKey(privateKey))
        check.trustRoots = .certificates(roots)
        do { _ = try NIOSSLContext(configuration: check) } catch { throw .mismatch(reason: "\(error)") }
    }

    private static func read(_ path: String, option: String) throws(PeerTLSError) -> [UInt8] {
        do { return Array(try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw .unreadable(option: option, path: path, reason: (error as NSError).localizedDescription)
        }
    }

    /// What a gRPC server of an instance uses: its identity, and client certificates required
    /// and verified against the CA (a client has no host name to check).
    public var serverSecurity: HTTP2ServerTransport.Posix.TransportSecurity {
        .mTLS(certificateChain: [.bytes(chain, format: .pem)], privateKey: .bytes(key, format: .pem)) { config in
            config.trustRoots = .certificates([.bytes(ca, format: .pem)])
            config.clientCertificateVerification = .noHostnameVerification
        }
    }

    /// What a client of an instance uses: its identity, and the server verified against the CA,
    /// host name or IP address included.
    public var clientSecurity: HTTP2ClientTransport.Posix.TransportSecurity {
        .mTLS(certificateChain: [.bytes(chain, format: .pem)], privateKey: .bytes(key, format: .pem)) { config in
            config.trustRoots = .certificates([.bytes(ca, format: .pem)])
            config.serverCertificateVerification = .fullVerification
        }
    }
}

extension Optional where Wrapped == PeerTLS {
    /// The server's settings: TLS when configured, else plaintext.
    public var serverSecurity: HTTP2ServerTransport.Posix.TransportSecurity { self?.serverSecurity ?? .plaintext }
    /// The client's settings: TLS when configured, else plaintext.
    public var clientSecurity: HTTP2ClientTransport.Posix.TransportSecurity { self?.clientSecurity ?? .plaintext }
}
