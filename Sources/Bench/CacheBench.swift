import Engine
import Foundation
import MemPool
import Model

/// `memserve bench cache`: time to first token of a long prompt, uncached vs. with most of it
/// (a shared document, a chat history) already in the MemPool's prompt tree.
public enum CacheBench {
    public struct Result: Codable, Sendable {
        public var prompt_tokens: Int
        public var cached_prefix_tokens: Int
        /// Tokens the cached run reported as served from the cache (whole blocks of the prefix).
        public var reported_cached_tokens: Int
        public var ttft_uncached_ms: Double
        public var ttft_cached_ms: Double
        /// ttft_cached_ms / ttft_uncached_ms.
        public var ratio: Double
        /// The ratio the work implies: FLOPs of the uncached suffix prefill / FLOPs of the whole prefill.
        public var flop_ratio: Double
    }

    public static func run(model loaded: LoadedModel, promptTokens: Int = 2048, cachedTokens: Int = 1792,
                           repeats: Int = 3) throws -> Result {
        let model = loaded.transformer
        let c = model.configuration
        guard promptTokens < model.maxContext else {
            throw EngineError.promptTooLong(tokens: promptTokens, limit: model.maxContext)
        }
        var random = RandomSource(seed: 11)
        let blocks = 2 * model.kvLayout.blocks(forTokens: promptTokens + 2)
        var uncached: [Double] = [], cached: [Double] = []
        var reported = 0
        for r in 0..<repeats {
            // A fresh prompt each round so nothing of it is cached by an earlier round.
            let prompt = (0..<promptTokens).map { _ in Int32(random.next() % UInt64(c.vocabularySize)) }
            var params = SamplingParameters.greedy
            params.maxTokens = 1

            let cold = EngineCore(model: model, tokenizer: loaded.tokenizer, memPool: try loaded.makeMemPool(hotBlocks: blocks))
            uncached.append(try timeToFirstToken(cold, GenerationRequest(id: 1, promptTokens: prompt, sampling: params)).ms)

            let warm = EngineCore(model: model, tokenizer: loaded.tokenizer, memPool: try loaded.makeMemPool(hotBlocks: blocks))
            _ = try timeToFirstToken(warm, GenerationRequest(id: 1, promptTokens: Array(prompt[0..<cachedTokens]), sampling: params))
            let hit = try timeToFirstToken(warm, GenerationRequest(id: 2, promptTokens: prompt, sampling: params))
            cached.append(hit.ms)
            if r == 0 { reported = hit.cached }
        }
        let u = median(uncached), k = median(cached)
        func flops(new n: Int, context p: Int) -> Double {
            let projection = 2 * Double(model.weights.projectionMACsPerToken) * Double(n)
            // Causal attention of n new tokens after p cached ones: QKᵀ and PV.
            let pairs = Double(n) * Double(p) + Double(n) * Double(n + 1) / 2
            return projection + 4 * Double(c.layerCount * c.headCount * c.headDim) * pairs
        }
        return Result(prompt_tokens: promptTokens, cached_prefix_tokens: cachedTokens, reported_cached_tokens: reported,
                      ttft_uncached_ms: u, ttft_cached_ms: k, ratio: k / u,
                      flop_ratio: flops(new: promptTokens - reported, context: reported) / flops(new: promptTokens, context: 0))
    }

    /// Adds the request and steps until its first token; returns milliseconds and cached tokens.
    static func timeToFirstToken(_ engine: EngineCore, _ request: GenerationRequest) throws -> (ms: Double, cached: Int) {
        let start = DispatchTime.now().uptimeNanoseconds
        try engine.add(request)
        var first: (Double, Int)?
        while engine.hasWork {
            for out in try engine.step() where out.id == request.id && out.token != nil && first == nil {
                first = (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6, out.cachedTokens)
            }
        }
        return first ?? (.nan, 0)
    }
}
