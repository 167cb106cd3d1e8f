import Router
import Cluster
import Engine
import Foundation
import GRPCCore
import Model
import Testing
import Wire

/// Instances as real separate `memserve instance` processes on loopback, joined by a front end
/// in the test process: the same answers as one engine, and processes that die mid-request
/// or mid-transfer fail only their own requests, with no block left held anywhere.
@Suite("PD disaggregation across processes", .serialized)
struct MultiProcessTests {
    static func params(_ n: Int) -> SamplingParameters { PDClusterTests.params(n) }

    @Test("a prefill and a decode process serve a conversation exactly like one engine", arguments: [PDMode.basic, .caching3])
    func conversationAcrossProcesses(mode: PDMode) async throws {
        let model = ProcessModel.loaded
        let colocated = EngineService(model: model.sibling(threads: 1), memPool: try model.makeMemPool(hotBlocks: 256))
        defer { colocated.shutdown() }
        let expected = try await PDClusterTests.conversation { try colocated.submit(promptTokens: $0, sampling: Self.params(10)).1 }

        let decode = try await InstanceProcess.start(role: "decode", mode: mode, model: ProcessModel.path)
        defer { decode.stop() }
        let prefill = try await InstanceProcess.start(role: "prefill", mode: mode, model: ProcessModel.path)
        defer { prefill.stop() }
        let front = try await ClusterRouter.connect(model: model.served, peers: [prefill.address, decode.address], configuration: LocalNodes.spreading)
        #expect(front.memberList.map(\.description.role.rawValue).sorted() == ["decode", "prefill"])
        let got = try await PDClusterTests.conversation { try front.submit(promptTokens: $0, sampling: Self.params(10)).1 }
        #expect(got.map(\.tokens) == expected.map(\.tokens))
        if mode == .caching3 {
            for (prev, next) in zip(got.map(\.cached), got.dropFirst().map(\.cached)) { #expect(next > prev) }
        } else {
            #expect(got.allSatisfy { $0.cached == 0 })
        }
        for p in [prefill, decode] {
            let raw = try RawPeer(p.address)
            #expect(LocalNodes.idle(try await raw.waitIdle()), "\(p.role): no block held after the conversation")
            raw.clients.shutdown()
        }
    }

    @Test("killing a decode process fails only its requests; the others finish; prefill frees every block")
    func decodeProcessDies() async throws {
        let model = ProcessModel.loaded
        let prefill = try await InstanceProcess.start(role: "prefill", mode: .caching2, model: ProcessModel.path)
        defer { prefill.stop() }
        let doomed = try await InstanceProcess.start(role: "decode", mode: .caching2, model: ProcessModel.path)
        let healthy = try await InstanceProcess.start(role: "decode", mode: .caching2, model: ProcessModel.path)
        defer { healthy.stop(); doomed.stop() }
        let front = try await ClusterRouter.connect(model: model.served, peers: [prefill.address, doomed.address, healthy.address], configuration: LocalNodes.spreading)

        // Four long requests; the front end spreads them over both decode instances.
        let length = 3000
        let started = AsyncStream<Void>.makeStream()
        let outcomes = try await withThrowingTaskGroup(of: Result<Int, any Error>.self) { group in
            for i in 0..<4 {
                let prompt = (0..<(40 + i)).map { Int32(3 + ($0 * 7 + i) % 250) }
                let stream = try front.submit(promptTokens: prompt, sampling: Self.params(length)).1
                group.addTask {
                    var n = 0
                    do {
                        for try await o in stream where o.token != nil {
                            n += 1
                            if n == 5 { started.continuation.yield() }
                        }
                        return .success(n)
                    } catch {
                        if n < 5 { started.continuation.yield() }
                        return .failure(error)
                    }
                }
            }
            var seen = 0
            for await _ in started.stream {
                seen += 1
                if seen == 4 { break }
            }
            // Kill it while its two requests are generating there (clients may lag behind).
            let raw = try RawPeer(doomed.address)
            #expect(try await raw.waitRunning(2))
            raw.clients.shutdown()
            doomed.kill()
            var all: [Result<Int, any Error>] = []
            for try await r in group { all.append(r) }
            return all
        }
        let failed = outcomes.compactMap(\.failure), finished = outcomes.compactMap(\.success)
        #expect(failed.count == 2 && finished == [length, length], "two requests were on the killed instance: \(outcomes)")
        for e in failed {
            #expect(e is RemoteError, "a clear error, not a crash: \(e)")
            #expect("\(e)".contains("failed"))
        }
        // Later requests avoid the dead instance once the router has noticed (its cache stream
        // from the instance broke).
        for _ in 0..<500 where front.memberList.first(where: { $0.name == doomed.address.description })?.connected != false {
            try await Task.sleep(for: .milliseconds(10))
        }
        for _ in 0..<3 {
            let r = try await PDClusterTests.collect(try front.submit(promptTokens: Array(10..<60), sampling: Self.params(6)).1)
            #expect(r.tokens.count == 6)
        }
        #expect(front.memberList.first { $0.name == doomed.address.description }?.connected == false)
        for p in [prefill, healthy] {
            let raw = try RawPeer(p.address)
            #expect(LocalNodes.idle(try await raw.waitIdle()), "\(p.role): pool back to baseline")
            raw.clients.shutdown()
        }
    }

    @Test("killing the prefill process mid-decode frees the decode process's blocks")
    func prefillProcessDies() async throws {
        let model = ProcessModel.loaded
        let decode = try await InstanceProcess.start(role: "decode", mode: .caching3, model: ProcessModel.path)
        defer { decode.stop() }
        let prefill = try await InstanceProcess.start(role: "prefill", mode: .caching3, model: ProcessModel.path)
        let front = try await ClusterRouter.connect(model: model.served, peers: [prefill.address, decode.address], configuration: LocalNodes.spreading)
        let streams = try (0..<2).map { i in
            try front.submit(promptTokens: (0..<(50 + i)).map { Int32(9 + $0 % 200) }, sampling: Self.params(3000)).1
        }
        for s in streams {
            var n = 0
            for try await o in s where o.token != nil {
                n += 1
                if n == 5 { break }
            }
        }
        let raw = try RawPeer(decode.address)
        #expect(try await raw.waitRunning(2), "both requests decoding when prefill dies")
        prefill.kill()
        #expect(LocalNodes.idle(try await raw.waitIdle()), "decode aborted the orphaned requests and freed their blocks")
        raw.clients.shutdown()
    }

    @Test("a prefill process that dies mid-transfer leaves no reserved block at decode")
    func transferAbandoned() async throws {
        let decode = try await InstanceProcess.start(role: "decode", mode: .caching2, model: ProcessModel.path)
        defer { decode.stop() }
        let raw = try RawPeer(decode.address)
        let info = try await raw.info()
        let tokens = (0..<(16 * Int(info.blockTokens) + 1)).map { Int32(5 + $0 % 240) }
        let error = await raw.abandonedHandoff(tokens: tokens, blockTokens: Int(info.blockTokens), blockBytes: Int(info.blockBytes), chunks: 3)
        #expect(error != nil)
        let s = try await raw.waitIdle()
        #expect(LocalNodes.idle(s) && s.hot.cached == 0, "the reservation was dropped, nothing half-written was cached")
        raw.clients.shutdown()
    }
}

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `memserve serve --peers` as a process: the OpenAI API in front of instance processes.
@Suite("memserve serve --peers", .serialized)
struct FrontEndProcessTests {
    static func post(_ base: URL, _ body: String) async throws -> (Int, [String: Any]) {
        var request = URLRequest(url: base.appendingPathComponent("v1/completions"))
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(body.utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        return ((response as! HTTPURLResponse).statusCode, json)
    }

    @Test("completions through a front-end process; a dead decode instance is a 502 with an OpenAI error body")
    func serveOverPeers() async throws {
        let decode = try await InstanceProcess.start(role: "decode", mode: .caching3, model: ProcessModel.path)
        defer { decode.stop() }
        let prefill = try await InstanceProcess.start(role: "prefill", mode: .caching3, model: ProcessModel.path)
        defer { prefill.stop() }
        let (serve, base) = try await InstanceProcess.serve(peers: [prefill.address, decode.address], model: ProcessModel.path)
        defer { serve.stop() }

        let body = #"{"model": "\#(ProcessModel.loaded.name)", "prompt": "the cat sat on the mat and then the dog sat on the rug in the sun", "max_tokens": 12, "temperature": 0, "ignore_eos": true}"#
        let (status, json) = try await Self.post(base, body)
        #expect(status == 200)
        let usage = json["usage"] as? [String: Any]
        #expect(usage?["completion_tokens"] as? Int == 12)
        // Again: prefill finds the prompt (and, PD-Caching-3, the answer) cached.
        let (_, again) = try await Self.post(base, body)
        let details = (again["usage"] as? [String: Any])?["prompt_tokens_details"] as? [String: Any]
        #expect((details?["cached_tokens"] as? Int ?? 0) > 0)

        decode.kill()
        let (failed, error) = try await Self.post(base, body)
        #expect(failed == 502)
        let detail = error["error"] as? [String: Any]
        #expect(detail?["code"] as? String == "instance_failed")
        #expect((detail?["message"] as? String)?.contains(decode.address.description) == true)
        // Garbage still gets a 400, and the front end is still up.
        let (bad, _) = try await Self.post(base, #"{"prompt": 3}"#)
        #expect(bad == 400)
    }
}

/// `memserve router` as a process: the OpenAI API over colocated instance processes on other
/// loopback addresses, with the debug endpoints.
@Suite("memserve router", .serialized)
struct RouterProcessTests {
    static func get(_ url: URL) async throws -> [String: Any] {
        let (data, _) = try await URLSession.shared.data(from: url)
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    @Test("routes completions to the instance holding the prompt and explains why")
    func routerOverInstances() async throws {
        let a = try await InstanceProcess.start(role: "colocated", mode: .caching1, model: ProcessModel.path, listen: "127.0.0.2:0")
        defer { a.stop() }
        let b = try await InstanceProcess.start(role: "colocated", mode: .caching1, model: ProcessModel.path, listen: "127.0.0.3:0")
        defer { b.stop() }
        let (router, url) = try await InstanceProcess.launch(
            ["router", "--listen", "127.0.0.1:0", "--model", ProcessModel.path, "--peers", "\(a.address),\(b.address)"],
            name: "router", prefix: "listening on ")
        defer { router.terminate(); router.waitUntilExit() }
        let base = URL(string: url)!
        let body = #"{"prompt": "a long shared system prompt that every request of this user repeats before asking its question", "max_tokens": 4, "temperature": 0}"#
        let (status, _) = try await FrontEndProcessTests.post(base, body)
        #expect(status == 200)
        for _ in 0..<3 {
            let (s, again) = try await FrontEndProcessTests.post(base, body)
            #expect(s == 200)
            let details = (again["usage"] as? [String: Any])?["prompt_tokens_details"] as? [String: Any]
            #expect((details?["cached_tokens"] as? Int ?? 0) > 0, "the router sent the repeat where the prompt is cached")
        }
        let trees = try await Self.get(base.appendingPathComponent("debug/trees"))
        #expect((trees["members"] as? [Any])?.count == 2)
        var request = URLRequest(url: base.appendingPathComponent("debug/route"))
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(body.utf8)
        let (data, _) = try await URLSession.shared.data(for: request)
        let explained = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        let entry = explained?["entry"] as? [String: Any]
        #expect((entry?["candidates"] as? [Any])?.count == 2)
        let best = (entry?["candidates"] as? [[String: Any]])?.map { $0["matched_tokens"] as? Int ?? 0 }.max() ?? 0
        #expect(best > 0, "one candidate holds the prompt")
    }
}
