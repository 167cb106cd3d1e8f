import Router
import Cluster
import Crypto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftASN1
import Testing
import Wire
import X509

/// A throwaway PKI in a temporary directory: CAs and leaf certificates for 127.0.0.1.
struct TestPKI {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("memserve-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }

    struct Authority {
        let key: P256.Signing.PrivateKey
        let name: DistinguishedName
        let certificate: Certificate
    }

    /// A self-signed CA, written to `<name>.ca.pem`.
    func authority(_ name: String) throws -> (Authority, path: String) {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName { CommonName("MemServe test CA \(name)") }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 86_400, issuer: subject, subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true))
            },
            issuerPrivateKey: .init(key))
        let path = directory.appendingPathComponent("\(name).ca.pem").path
        try certificate.serializeAsPEM().pemString.write(toFile: path, atomically: true, encoding: .utf8)
        return (Authority(key: key, name: subject, certificate: certificate), path)
    }

    /// A leaf for 127.0.0.1 and localhost signed by `ca` (server and client use), written to
    /// `<name>.pem` and `<name>.key`; returns their paths.
    func leaf(_ name: String, signedBy ca: Authority) throws -> (certificate: String, key: String) {
        let key = P256.Signing.PrivateKey()
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 86_400, issuer: ca.name,
            subject: try DistinguishedName { CommonName("memserve \(name)") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames([.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])), .dnsName("localhost")])
            },
            issuerPrivateKey: .init(ca.key))
        let certificatePath = directory.appendingPathComponent("\(name).pem").path
        let keyPath = directory.appendingPathComponent("\(name).key").path
        try certificate.serializeAsPEM().pemString.write(toFile: certificatePath, atomically: true, encoding: .utf8)
        try key.pemRepresentation.write(toFile: keyPath, atomically: true, encoding: .utf8)
        return (certificatePath, keyPath)
    }
}

@Suite("Mutual TLS between instances", .serialized)
struct TLSTests {
    /// An instance serving gRPC with mutual TLS on loopback.
    struct Served {
        let node: InstanceNode
        let task: Task<Void, any Error>
        let address: PeerAddress

        static func start(tls: PeerTLS) async throws -> Served {
            let m = PDClusterTests.base.sibling(threads: 1)
            let node = InstanceNode(model: m, memPool: try m.makeMemPool(hotBlocks: 96), role: .colocated, mode: .caching1,
                                    listen: PeerAddress(host: "127.0.0.1", port: 0), tls: tls)
            let task = Task { try await node.run() }
            return Served(node: node, task: task, address: try await node.listeningAddress)
        }

        func stop() async {
            node.shutdown()
            _ = try? await task.value
        }
    }

    /// An `Info` call with `security`, bounded in time: the description, or the error.
    static func info(_ address: PeerAddress, security: HTTP2ClientTransport.Posix.TransportSecurity) async -> Result<Memserve_V1_InstanceInfo, any Error> {
        do {
            let transport = try HTTP2ClientTransport.Posix(target: .ipv4(address: address.host, port: address.port),
                                                           transportSecurity: security)
            return try await withGRPCClient(transport: transport) { client -> Result<Memserve_V1_InstanceInfo, any Error> in
                var options = CallOptions.defaults
                options.timeout = .seconds(20)
                do { return .success(try await Memserve_V1_Instance.Client(wrapping: client).info(Memserve_V1_InfoRequest(), options: options)) }
                catch { return .failure(error) }
            }
        } catch {
            return .failure(error)
        }
    }

    @Test("a client with a certificate from the instance's CA is served; no certificate, another CA's or plaintext is refused")
    func handshakes() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let (ca, caPath) = try pki.authority("good")
        let (other, otherPath) = try pki.authority("other")
        let server = try pki.leaf("instance", signedBy: ca)
        let client = try pki.leaf("router", signedBy: ca)
        let stranger = try pki.leaf("stranger", signedBy: other)
        let served = try await Served.start(tls: try PeerTLS(certificate: server.certificate, key: server.key, ca: caPath))

        // A client of the same CA: Info and a whole request through a router.
        let good = try PeerTLS(certificate: client.certificate, key: client.key, ca: caPath)
        let info = await Self.info(served.address, security: good.clientSecurity)
        #expect((try? info.get())?.role == "colocated")
        let clients = PeerClients(tls: good)
        let router = try await ClusterRouter.connect(model: PDClusterTests.base.served, peers: [served.address], clients: clients)
        let out = try await PDClusterTests.collect(try router.submit(promptTokens: Array(5..<40), sampling: PDClusterTests.params(6)).1)
        #expect(out.tokens.count == 6)
        router.shutdown()

        // No client certificate (the server is trusted): the server refuses the handshake.
        let anonymous: HTTP2ClientTransport.Posix.TransportSecurity = .tls { config in
            config.trustRoots = .certificates([.file(path: caPath, format: .pem)])
        }
        let refused = [
            ("no client certificate", anonymous),
            // A certificate from another CA, trusting the right one: the server refuses it.
            ("a certificate from another CA",
             try PeerTLS(certificate: stranger.certificate, key: stranger.key, ca: caPath).clientSecurity),
            // The right certificate, but trusting another CA: the client refuses the server.
            ("a client trusting another CA",
             try PeerTLS(certificate: client.certificate, key: client.key, ca: otherPath).clientSecurity),
            ("plaintext", .plaintext),
        ]
        for (what, security) in refused {
            let result = await Self.info(served.address, security: security)
            guard case .failure(let error) = result else {
                Issue.record("\(what): served")
                continue
            }
            #expect((error as? RPCError)?.code == .unavailable, "\(what): \(error)")
        }

        // A router whose certificate the instance refuses gets a clear error instead of a member.
        let strangerClients = PeerClients(tls: try PeerTLS(certificate: stranger.certificate, key: stranger.key, ca: caPath))
        await #expect {
            _ = try await ClusterRouter.connect(model: PDClusterTests.base.served, peers: [served.address], clients: strangerClients)
        } throws: { error in
            guard case .peerFailed(let peer, let reason) = error as? RemoteError else { return false }
            return peer == served.address.description && reason.contains("TLS")
        }
        strangerClients.shutdown()
        // A plaintext router is told that the instance may want TLS.
        let plain = PeerClients()
        await #expect {
            _ = try await ClusterRouter.connect(model: PDClusterTests.base.served, peers: [served.address], clients: plain)
        } throws: { error in
            guard case .peerFailed(_, let reason) = error as? RemoteError else { return false }
            return reason.contains("--tls-cert")
        }
        plain.shutdown()

        // The instance still serves its own CA's clients afterwards.
        #expect((try? await Self.info(served.address, security: good.clientSecurity).get())?.role == "colocated")
        clients.shutdown()
        await served.stop()
    }

    @Test("unusable TLS files fail when the settings are made, naming the option")
    func badFiles() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let (ca, caPath) = try pki.authority("good")
        let a = try pki.leaf("a", signedBy: ca)
        let b = try pki.leaf("b", signedBy: ca)
        #expect(throws: PeerTLSError.self) { try PeerTLS(certificate: a.certificate, key: a.key, ca: pki.directory.appendingPathComponent("missing.pem").path) }
        #expect {
            try PeerTLS(certificate: a.certificate, key: b.key, ca: caPath)
        } throws: { error in
            if case .mismatch = error as? PeerTLSError { return true }
            return false
        }
        #expect {
            try PeerTLS(certificate: a.key, key: a.key, ca: caPath)
        } throws: { error in
            if case .invalid(let option, _, _) = error as? PeerTLSError { return option == "--tls-cert" }
            return false
        }
        #expect(throws: Never.self) { try PeerTLS(certificate: a.certificate, key: a.key, ca: caPath) }
    }
}
