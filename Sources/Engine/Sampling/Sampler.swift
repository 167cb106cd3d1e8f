import Foundation
import Kernels

/// Chooses tokens from logits for one sequence: penalties, then greedy or
/// temperature → top-k → min-p → top-p → draw. Keeps the per-sequence state (token counts,
/// random stream) and scratch, so sampling allocates nothing after the first call.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var random: RandomSource
    /// Occurrences of each token in the prompt (for the repetition penalty) and in the output
    /// (for frequency/presence penalties).
    private var contextCounts: [Int32: Int] = [:]
    private var generatedCounts: [Int32: Int] = [:]
    private var candidates: [(id: Int32, logit: Float)] = []

    public init(parameters: SamplingParameters, prompt: some Sequence<Int32>) {
        self.parameters = parameters
        random = RandomSource(seed: parameters.seed ?? UInt64.random(in: .min ... .max))
        if parameters.repetitionPenalty != 1 {
            for t in prompt { contextCounts[t, default: 0] += 1 }
        }
    }

    /// Rebuilds a sequence's sampler elsewhere (a decode instance in another process): the
    /// counts follow from the tokens, the random stream from its saved state.
    public init(parameters: SamplingParameters, prompt: some Collection<Int32>, generated: some Collection<Int32>,
                randomState: [UInt64]) {
        self.init(parameters: parameters, prompt: prompt)
        if randomState.count == 4 { random.state = randomState }
        for t in generated { accept(t) }
    }

    /// The random stream's position (see `init(parameters:prompt:generated:randomState:)`).
    public var randomState: [UInt64] { random.state }

    /// Records a token the sequence produced (whether sampled here or forced).
    public mutating func accept(_ token: Int32) {
        if parameters.repetitionPenalty != 1 { contextCounts[token, default: 0] += 1 }
        if parameters.frequencyPenalty != 0 || parameters.presencePenalty != 0 {
            generatedCounts[token, default: 0] += 1
        }
    }

    /// Picks the next token. `logits` is modified (penalties are applied in place).
    public mutating func sample(_ logits: UnsafeMutableBufferPointer<Float>) -> Int32 {
        let p = parameters
        let base = logits.baseAddress!, n = logits.count
        if p.repetitionPenalty != 1 {
            for (t, _) in contextCounts where Int(t) < n {
                let l = base[Int(t)]
                base[Int(t)] = l > 0 ? l / p.repetitionPenalty : l * p.repetitionPenalty
            }
        }
        if p.frequencyPenalty != 0 || p.presencePenalty != 0 {
            for (t, count) in generatedCounts where Int(t) < n {
                base[Int(t)] -= p.frequencyPenalty * Float(count) + p.presencePenalty
            }
        }
        if p.isGreedy { return Int32(argmax(base, n)) }

        // Candidates: tokens within 30/temperature nats of the best (smaller probabilities are
        // below 1e-13 relative and cannot change a draw), or the top k.
        let best = base[argmax(base, n)]
        let floor = best - 30 * p.temperature
        candidates.removeAll(keepingCapacity: true)
        for i in 0..<n where base[i] >= floor { candidates.append((Int32(i), base[i])) }
        candidates.sort { $0.logit > $1.logit || ($0.logit == $1.logit && $0.id < $1.id) }
        if p.topK > 0 && candidates.count > p.topK { candidates.removeLast(candidates.count - p.topK) }

        // Softmax with temperature over the candidates (sorted, so the first is the max).
        let invT = 1 / p.temperature
        let maxLogit = candidates[0].logit
        var total: Float = 0
        for i in candidates.indices {
            let e = expf((candidates[i].logit - maxLogit) * invT)
            candidates[i].logit = e
            total += e
        }
        var keep = candidates.count
        if p.minP > 0 {
            let threshold = p.minP * candidates[0].logit
            while keep > 1 && candidates[keep - 1].logit < threshold { keep -= 1 }
        }
        if p.topP < 1 {
            var mass: Float = 0
            let limit = p.topP * total
            for i in 0..<keep {
                mass += candidates[i].logit
                if mass >= limit { keep = i + 1; break }
            }
        }
        var kept: Float = 0
        for i in 0..<keep { kept += candidates[i].logit }
        var r = random.nextUnit() * kept
        for i in 0..<keep {
            r -= candidates[i].logit
            if r < 0 { return candidates[i].id }
        }
        return candidates[keep - 1].id
    }
}
