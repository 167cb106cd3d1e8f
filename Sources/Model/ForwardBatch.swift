/// One sequence's share of a forward step: a prefill chunk or a decode token.
public struct SequenceSlice: Sendable, Equatable {
    /// Which entries of `ForwardBatch.tokens` belong to this sequence (contiguous).
    public var tokens: Range<Int>
    /// Position of the first of those tokens in the sequence.
    public var startPosition: Int
    /// KV blocks covering positions `0 ..< startPosition + tokens.count`.
    public var blockTable: [Int32]
    /// Whether to compute logits for the last of these tokens (only where a token is sampled).
    public var wantsLogits: Bool

    public init(tokens: Range<Int>, startPosition: Int, blockTable: [Int32], wantsLogits: Bool) {
        self.tokens = tokens
        self.startPosition = startPosition
        self.blockTable = blockTable
        self.wantsLogits = wantsLogits
    }

    public var endPosition: Int { startPosition + tokens.count }
}

/// The input of one forward step: new tokens of several sequences, each with any count
/// (the shape continuous batching needs). Data only: built by the scheduler, run by the model.
public struct ForwardBatch: Sendable, Equatable {
    public var tokens: [Int32]
    public var sequences: [SequenceSlice]

    public init(tokens: [Int32] = [], sequences: [SequenceSlice] = []) {
        self.tokens = tokens
        self.sequences = sequences
    }

    /// Appends one sequence's new tokens.
    public mutating func add(tokens new: some Collection<Int32>, startPosition: Int, blockTable: [Int32], wantsLogits: Bool) {
        let lo = tokens.count
        tokens.append(contentsOf: new)
        sequences.append(SequenceSlice(tokens: lo..<tokens.count, startPosition: startPosition,
                                       blockTable: blockTable, wantsLogits: wantsLogits))
    }

    public mutating func removeAll() {
        tokens.removeAll(keepingCapacity: true)
        sequences.removeAll(keepingCapacity: true)
    }

    public var logitRows: Int { sequences.reduce(0) { $0 + ($1.wantsLogits ? 1 : 0) } }
}

/// Logits of the sequences that asked for them, in batch order: `rows × vocabularySize`.
/// Valid until the next forward call on the same model.
public struct Logits: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Float>
    public let rows: Int
    public let vocabularySize: Int

    @inlinable public func row(_ i: Int) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: base + i * vocabularySize, count: vocabularySize)
    }
}
