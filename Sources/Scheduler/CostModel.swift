/// An order to move blocks `fromBlock..<toBlock` of a prompt from the instance that caches them
/// to the one chosen for the request, before its prefill starts (`transfer_with_insert`).
/// Encodes with snake_case keys: `source`, `destination`, `from_block`, `to_block`,
/// `predicted_transfer_s`, `predicted_recompute_s`.
public struct TransferOrder: Sendable, Hashable, Codable {
    public var source: InstanceID
    public var destination: InstanceID
    /// First prompt block to move: the destination caches the blocks before it.
    public var fromBlock: Int
    /// One past the last block to move.
    public var toBlock: Int
    public var predictedTransferSeconds: Double
    /// Prefill time the transfer saves the destination.
    public var predictedRecomputeSeconds: Double

    public init(source: InstanceID, destination: InstanceID, fromBlock: Int, toBlock: Int,
                predictedTransferSeconds: Double, predictedRecomputeSeconds: Double) {
        self.source = source
        self.destination = destination
        self.fromBlock = fromBlock
        self.toBlock = toBlock
        self.predictedTransferSeconds = predictedTransferSeconds
        self.predictedRecomputeSeconds = predictedRecomputeSeconds
    }

    /// Blocks moved.
    public var blocks: Int { toBlock - fromBlock }

    enum CodingKeys: String, CodingKey {
        case source, destination
        case fromBlock = "from_block"
        case toBlock = "to_block"
        case predictedTransferSeconds = "predicted_transfer_s"
        case predictedRecomputeSeconds = "predicted_recompute_s"
    }
}

/// Transfer or recompute: when another instance caches more of a prompt than the destination,
/// moving the missing blocks costs `latency + blocks * blockBytes / bandwidth` (the slower end's
/// bandwidth, the larger latency), recomputing them costs the destination's prefill of those
/// tokens at their place in the prompt. A transfer is ordered only when it is cheaper.
public struct CostModel: Sendable, Hashable, Codable {
    /// Whether transfers are ordered at all.
    public var enabled: Bool
    /// Fewest blocks worth a transfer.
    public var minimumBlocks: Int
    /// A transfer is ordered when `transfer * margin < recompute`; above 1 it must win clearly.
    public var margin: Double

    public init(enabled: Bool = true, minimumBlocks: Int = 1, margin: Double = 1) {
        self.enabled = enabled
        self.minimumBlocks = max(1, minimumBlocks)
        self.margin = max(0, margin)
    }

    /// Predicted seconds to move `blocks` blocks from `source` to `destination`; infinite when
    /// either end reports no bandwidth.
    public func transferSeconds(blocks: Int, source: InstanceProfile, destination: InstanceProfile) -> Double {
        guard blocks > 0 else { return 0 }
        let bandwidth = min(source.transferBytesPerSecond, destination.transferBytesPerSecond)
        guard bandwidth > 0 else { return .infinity }
        let bytes = Double(blocks) * Double(destination.blockBytes)
        return max(source.transferLatencySeconds, destination.transferLatencySeconds) + bytes / bandwidth
    }

    /// Tokens a prefill can take from cache: at least the last token is always computed (its
    /// logits start generation).
    public static func usableCachedTokens(_ cached: Int, promptTokens: Int) -> Int {
        max(0, min(cached, promptTokens - 1))
    }

    /// Predicted prefill seconds that caching blocks `fromBlock..<toBlock` saves `destination`
    /// on a `promptTokens`-token prompt: those tokens, with attention over everything before them.
    public func recomputeSeconds(promptTokens: Int, fromBlock: Int, toBlock: Int, destination: InstanceProfile) -> Double {
        let bt = destination.blockTokens
        let from = Self.usableCachedTokens(fromBlock * bt, promptTokens: promptTokens)
        let to = Self.usableCachedTokens(toBlock * bt, promptTokens: promptTokens)
        guard to > from else { return 0 }
        return destination.prefillSeconds(tokens: promptTokens, cachedTokens: from)
            - destination.prefillSeconds(tokens: promptTokens, cachedTokens: to)
    }

    /// The transfer of what `source` caches beyond `destination`, if it is worth it.
    public func order(promptTokens: Int, promptBlocks: Int, destination: Candidate, source: Candidate) -> TransferOrder? {
        guard enabled, source.instance != destination.instance else { return nil }
        let from = destination.expectedBlocks, to = min(source.matchedBlocks, promptBlocks)
        guard to - from >= minimumBlocks else { return nil }
        let t = transferSeconds(blocks: to - from, source: source.profile, destination: destination.profile)
        let r = recomputeSeconds(promptTokens: promptTokens, fromBlock: from, toBlock: to, destination: destination.profile)
        guard t.isFinite, t * margin < r else { return nil }
        return TransferOrder(source: source.instance, destination: destination.instance, fromBlock: from, toBlock: to,
                             predictedTransferSeconds: t, predictedRecomputeSeconds: r)
    }

    /// The candidate to take blocks from: the one caching the most of the prompt (ties: more hot
    /// blocks, then fewer requests).
    public static func bestHolder(_ candidates: [Candidate]) -> Int? {
        var best: Int? = nil
        for (k, c) in candidates.enumerated() where c.matchedBlocks > 0 {
            guard let b = best else {
                best = k
                continue
            }
            let o = candidates[b]
            if (c.matchedBlocks, c.hotBlocks, -c.load.requests) > (o.matchedBlocks, o.hotBlocks, -o.load.requests) { best = k }
        }
        return best
    }
}
