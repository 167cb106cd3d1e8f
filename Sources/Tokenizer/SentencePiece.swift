/// SentencePiece-style BPE, as GGUF files with `tokenizer.ggml.model` "llama" store it (Gemma,
/// Llama 2, Mistral): tokens spelled with `▁` for a space, a score per token, `<0xNN>` byte
/// tokens for what no token covers. Encoding follows llama.cpp's SPM tokenizer: spaces become
/// `▁`, the text is cut into UTF-8 characters, and the adjacent pair whose concatenation is the
/// highest-scoring token is merged (the leftmost on ties) until no pair is a token; a piece
/// that is no token falls back to its bytes.
public struct SentencePieceModel: Sendable {
    let scores: [Float]
    /// Prepend `▁` to the text (SentencePiece's `add_dummy_prefix`; Gemma's files say false).
    let addSpacePrefix: Bool

    static let space: [UInt8] = [0xE2, 0x96, 0x81]

    /// - Parameters:
    ///   - scores: GGUF `tokenizer.ggml.scores`, one per token.
    ///   - addSpacePrefix: `tokenizer.ggml.add_space_prefix`.
    public init(scores: [Float], addSpacePrefix: Bool) {
        self.scores = scores
        self.addSpacePrefix = addSpacePrefix
    }

    private struct Symbol {
        var start: Int
        var length: Int
        var prev: Int
        var next: Int
    }

    private struct Bigram {
        var score: Float
        var left: Int
        var right: Int
        var length: Int

        /// Max-heap order: higher score, then lower left position.
        func outranks(_ o: Bigram) -> Bool { score > o.score || (score == o.score && left < o.left) }
    }

    /// Appends the ids of `text` (free of special tokens) to `out`.
    func encode(_ text: UnsafeBufferPointer<UInt8>, first: Bool, lookup: (UnsafeBufferPointer<UInt8>) -> Int32?,
                byteTokens: [Int32], into out: inout [Int32]) {
        var escaped: [UInt8] = []
        escaped.reserveCapacity(text.count + 8)
        if addSpacePrefix && first { escaped += Self.space }
        for b in text {
            if b == 0x20 { escaped += Self.space } else { escaped.append(b) }
        }
        if escaped.isEmpty { return }
        escaped.withUnsafeBufferPointer { bytes in
            var symbols: [Symbol] = []
            symbols.reserveCapacity(bytes.count)
            var i = 0
            while i < bytes.count {
                let n = min(Self.utf8Length(bytes[i]), bytes.count - i)
                symbols.append(Symbol(start: i, length: n, prev: symbols.count - 1, next: i + n < bytes.count ? symbols.count + 1 : -1))
                i += n
            }
            var heap: [Bigram] = []
            func piece(_ start: Int, _ length: Int) -> UnsafeBufferPointer<UInt8> {
                UnsafeBufferPointer(rebasing: bytes[start..<start + length])
            }
            func tryAdd(_ left: Int, _ right: Int) {
                guard left >= 0, right >= 0 else { return }
                let l = symbols[left], r = symbols[right]
                guard let id = lookup(piece(l.start, l.length + r.length)) else { return }
                Self.push(Bigram(score: scores[Int(id)], left: left, right: right, length: l.length + r.length), &heap)
            }
            for k in 1..<max(symbols.count, 1) { tryAdd(k - 1, k) }
            while let bigram = Self.pop(&heap) {
                let l = symbols[bigram.left], r = symbols[bigram.right]
                // Stale: one side was merged into something else since this pair was queued.
                guard l.length > 0, r.length > 0, l.length + r.length == bigram.length else { continue }
                symbols[bigram.left].length += r.length
                symbols[bigram.right].length = 0
                symbols[bigram.left].next = r.next
                if r.next >= 0 { symbols[r.next].prev = bigram.left }
                tryAdd(symbols[bigram.left].prev, bigram.left)
                tryAdd(bigram.left, symbols[bigram.left].next)
            }
            var k = symbols.isEmpty ? -1 : 0
            while k >= 0 {
                let s = symbols[k]
                let p = piece(s.start, s.length)
                if let id = lookup(p) {
                    out.append(id)
                } else {
                    for b in p where byteTokens[Int(b)] >= 0 { out.append(byteTokens[Int(b)]) }
                }
                k = s.next
            }
        }
    }

    private static func utf8Length(_ lead: UInt8) -> Int {
        switch lead {
        case 0xF0...: 4
        case 0xE0...: 3
        case 0xC0...: 2
        default: 1
        }
    }

    private static func push(_ b: Bigram, _ heap: inout [Bigram]) {
        heap.append(b)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[i].outranks(heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    private static func pop(_ heap: inout [Bigram]) -> Bigram? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if heap.isEmpty { return top }
        heap[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var best = i
            if l < heap.count && heap[l].outranks(heap[best]) { best = l }
            if r < heap.count && heap[r].outranks(heap[best]) { best = r }
            if best == i { break }
            heap.swapAt(i, best)
            i = best
        }
        return top
    }
}
