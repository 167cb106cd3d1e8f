import Kernels
import MemPool
import Model
import Tokenizer

/// Limits of the continuous-batching scheduler.
public struct SchedulerConfiguration: Sendable {
    /// Tokens per forward step (decode tokens + prefill chunks); at most the model's batch capacity.
    public var tokenBudget: Int = 512
    /// Sequences decoding at once; at most the model's logit rows.
    public var maxRunning: Int = 64
    /// Reuse KV of cached prompt prefixes (MemPool's prompt tree) and cache what requests compute.
    public var prefixCaching: Bool = true
    /// Prefill instances hand sequences off after the first token.
    public var role: InstanceRole = .colocated
    /// Keep finished sequences' blocks for `takeFinished()` (PD-Caching-3 sends them back).
    public var retainFinished = false
    /// How waiting requests are admitted: cache-aware (longest cached prefix first) or FIFO.
    public var queueOrder: QueueOrder = .cacheAware
    /// Cache-aware order: a request overtaken by this many later arrivals is admitted next, so
    /// nothing starves behind a stream of cached requests.
    public var agingBound = 8

    public init() {}
}

/// How an engine orders its waiting queue.
public enum QueueOrder: String, Sendable, CaseIterable {
    /// Arrival order.
    case fifo
    /// Requests whose prompt is cached (most cached blocks first) go ahead of uncached
    /// prefills, as SGLang's longest-prefix-match policy, under an aging bound.
    case cacheAware = "cache-aware"
}

/// The engine's synchronous core, vLLM-style: `add` requests, call `step` until idle. Each step
/// schedules decode tokens and prefill chunks under a token budget, runs one batched forward
/// pass, samples, and reports per-request output. Single-threaded: wrap it to share.
public final class EngineCore {
    public let model: Transformer
    public let tokenizer: BPETokenizer
    public let memPool: MemPool
    public let configuration: SchedulerConfiguration
    let kvView: KVCacheView
    let endOfGeneration: Set<Int32>

    /// Admitted sequences, in admission order.
    var running: [SequenceState] = []
    /// Waiting to be admitted (new or preempted), in admission order (see `orderWaiting`).
    var waiting: [SequenceState] = []
    private var admissions = 0
    private var arrivals = 0
    /// Why the last step failed, if it did (its requests were ended with `.abort`).
    public private(set) var failedStep: EngineError?
    /// Handed-off sequences whose blocks are still held (until `releaseHandoff`).
    private var handedOff: [RequestID: SequenceState] = [:]
    private var newHandoffs: [Handoff] = []
    private var finished: [FinishedSequence] = []
    private var batch = ForwardBatch()
    private var scheduled: [SequenceState] = []
    private var outputs: [RequestOutput] = []

    public init(model: Transformer, tokenizer: BPETokenizer, memPool: MemPool,
                configuration: SchedulerConfiguration = SchedulerConfiguration()) {
        self.model = model
        self.tokenizer = tokenizer
        self.memPool = memPool
        var config = configuration
        config.tokenBudget = min(config.tokenBudget, model.options.maxBatchTokens)
        config.maxRunning = min(config.maxRunning, model.options.maxLogitRows)
        self.configuration = config
        kvView = KVCacheView(base: memPool.hotBase, blockCount: memPool.hotBlocks, layout: model.kvLayout)
        endOfGeneration = tokenizer.endOfGenerationIDs
    }

    public var hasWork: Bool { !running.isEmpty || !waiting.isEmpty }
    /// The last step had work but could schedule none of it (every block held): only something
    /// from outside (a release, an abort, a new task) can change that, so the caller may sleep
    /// until then.
    public private(set) var stalled = false
    /// Sequences and their block counts, for diagnostics.
    public var debugDescription: String {
        "running " + running.map { "\($0.id):\($0.computed)/\($0.tokens.count)b\($0.blocks.count)" }.joined(separator: ",") +
        " waiting " + waiting.map { "\($0.id):\($0.computed)/\($0.tokens.count)b\($0.blocks.count)" }.joined(separator: ",")
    }

    /// Handed-off sequences whose blocks are still held.
    public var pendingHandoffCount: Int { handedOff.count }
    public var runningCount: Int { running.count }
    public var waitingCount: Int { waiting.count }
    var blockTokens: Int { model.kvLayout.blockTokens }

    /// Queues a request; fails fast on what can never run.
    public func add(_ request: GenerationRequest) throws(EngineError) {
        try validate(request)
        if running.contains(where: { $0.id == request.id }) || waiting.contains(where: { $0.id == request.id }) {
            throw .duplicateRequest(request.id)
        }
        let s = SequenceState(request: request, tokenizer: tokenizer, endOfGeneration: endOfGeneration)
        arrivals += 1
        s.arrival = arrivals
        waiting.append(s)
    }

    /// Prompt tokens waiting to be computed (the prefill work queued here): for a router's
    /// load estimate.
    public var queuedPrefillTokens: Int {
        var n = 0
        for s in waiting { n += s.promptCount - min(s.computed, s.promptCount) }
        for s in running where s.computed < s.promptCount { n += s.promptCount - s.computed }
        return n
    }

    /// The checks `add` makes that depend only on the request and fixed limits (safe to call
    /// from any thread: it reads nothing the engine thread changes).
    public func validate(_ request: GenerationRequest) throws(EngineError) {
        if request.promptTokens.isEmpty { throw .emptyPrompt }
        if let why = request.sampling.validationError() { throw .invalidSampling(why) }
        let limit = model.maxContext
        if request.promptTokens.count >= limit { throw .promptTooLong(tokens: request.promptTokens.count, limit: limit) }
        let vocab = model.configuration.vocabularySize
        if let bad = request.promptTokens.first(where: { $0 < 0 || Int($0) >= vocab }) {
            throw .invalidToken(bad, vocabularySize: vocab)
        }
        let needed = model.kvLayout.blocks(forTokens: request.promptTokens.count + 1)
        if needed > memPool.hotBlocks { throw .kvCacheTooSmall(needed: needed, capacity: memPool.hotBlocks) }
    }

    /// Stops a request and frees its blocks; returns whether it was known.
    @discardableResult
    public func abort(_ id: RequestID) -> Bool {
        if let i = waiting.firstIndex(where: { $0.id == id }) {
            release(waiting.remove(at: i))
            return true
        }
        if let i = running.firstIndex(where: { $0.id == id }) {
            release(running.remove(at: i))
            return true
        }
        if handedOff[id] != nil {
            releaseHandoff(id)
            return true
        }
        return false
    }

    /// Runs one scheduling round and forward step; returns what each touched request produced.
    public func step() throws(EngineError) -> [RequestOutput] {
        outputs.removeAll(keepingCapacity: true)
        failedStep = nil
        schedule()
        stalled = batch.sequences.isEmpty && hasWork
        if batch.sequences.isEmpty { return outputs }
        let logits: Logits
        do {
            logits = try model.forward(batch, kv: kvView)
        } catch {
            // A batch the model refuses would fail again: end its requests instead of spinning
            // (their outputs, with finish reason .abort, are returned as usual).
            for s in scheduled { s.finish = .abort; finish(s) }
            failedStep = .modelFailure(error.description)
            return outputs
        }
        var row = 0
        for (s, slice) in zip(scheduled, batch.sequences) {
            let before = s.computed
            s.computed = slice.endPosition
            guard slice.wantsLogits else {
                // A prompt's blocks are shared as each chunk completes them, so requests that
                // arrive meanwhile (or wait for it) reuse them.
                if configuration.prefixCaching && s.generatedCount == 0 && s.computed / blockTokens > before / blockTokens {
                    cacheComputedBlocks(of: s)
                }
                continue
            }
            let token = s.sampler.sample(logits.row(row))
            row += 1
            // The prompt's KV is complete: share it with requests that arrive meanwhile.
            if configuration.prefixCaching && s.generatedCount == 0 { cacheComputedBlocks(of: s) }
            accept(token, into: s)
            if configuration.role == .prefill && s.finish == nil { handOff(s) }
        }
        running.removeAll { $0.finish != nil || $0.handedOff }
        return outputs
    }

    // MARK: - Disaggregation

    private func handOff(_ s: SequenceState) {
        s.handedOff = true
        handedOff[s.id] = s
        newHandoffs.append(Handoff(id: s.id, tokens: s.tokens, promptCount: s.promptCount, cachedTokens: s.cachedTokens,
                                   sampling: s.sampling, sampler: s.sampler, decoder: s.decoder,
                                   stopMatcher: s.stopMatcher, blocks: s.blocks, handoffTo: s.handoffTo, traceID: s.traceID))
    }

    /// Sequences handed off since the last call (prefill role). Their blocks stay held until
    /// `releaseHandoff`, so the KV can be read while it moves.
    public func takeHandoffs() -> [Handoff] {
        defer { newHandoffs.removeAll(keepingCapacity: true) }
        return newHandoffs
    }

    /// The KV of a handed-off sequence has arrived (or will never be needed): cache it (when
    /// caching) and drop the references.
    public func releaseHandoff(_ id: RequestID) {
        guard let s = handedOff.removeValue(forKey: id) else { return }
        release(s)
    }

    /// Continues a sequence prefilled elsewhere. `blocks` (held by the caller, now owned by the
    /// sequence) cover its KV.
    public func adopt(_ handoff: Handoff, blocks: [Int32]) {
        let s = SequenceState(handoff: handoff, blocks: blocks, endOfGeneration: endOfGeneration)
        waiting.append(s)
    }

    /// Finished sequences kept with `retainFinished`; the caller releases their blocks with
    /// `memPool.release` when it is done with them.
    public func takeFinished() -> [FinishedSequence] {
        defer { finished.removeAll(keepingCapacity: true) }
        return finished
    }

    // MARK: - Scheduling

    /// Fills `batch`: one token for every decoding sequence, then prefill chunks in admission
    /// order, then newly admitted requests, all within the token budget and the free blocks.
    private func schedule() {
        batch.removeAll()
        scheduled.removeAll(keepingCapacity: true)
        var budget = configuration.tokenBudget

        var i = 0
        while i < running.count && budget > 0 {
            let s = running[i]
            let n = min(s.pending, budget)
            if n <= 0 { i += 1; continue }
            if !ensureBlocks(s, tokens: s.computed + n) {
                // Out of KV blocks: preempt the newest other sequence and retry, or wait.
                if preemptNewest(except: s) { continue }
                if running.count == 1 && model.kvLayout.blocks(forTokens: s.computed + n) > memPool.hotBlocks {
                    // It outgrew the whole pool: it can never grow here. End it rather than stall.
                    // (Short of that, blocks held outside the sequences, by a transfer, come back:
                    // it waits.)
                    s.finish = .length
                    finish(s)
                    continue
                }
                break
            }
            add(s, count: n)
            budget -= n
            i += 1
        }

        if configuration.queueOrder == .cacheAware && configuration.prefixCaching && waiting.count > 1 { orderWaiting() }
        var j = 0
        while budget > 0, running.count < configuration.maxRunning, j < waiting.count {
            let s = waiting[j]
            if configuration.prefixCaching && s.blocks.isEmpty {
                if awaitsPrefixBeingComputed(s) {
                    j += 1
                    continue
                }
                attachCachedPrefix(s)
            }
            let n = min(s.pending, budget)
            guard ensureBlocks(s, tokens: s.computed + n) else {
                releaseBlocks(of: s)
                s.computed = 0
                s.cachedTokens = 0
                // Sequences further back that hold blocks (adopted from a prefill instance)
                // must not starve the head of the queue: take theirs, newest first, and retry.
                if let victim = waiting[(j + 1)...].last(where: { !$0.blocks.isEmpty }) {
                    dropKV(of: victim)
                    continue
                }
                break
            }
            waiting.remove(at: j)
            for w in waiting where w.arrival < s.arrival { w.overtaken += 1 }
            admissions += 1
            s.admittedAt = admissions
            running.append(s)
            add(s, count: n)
            budget -= n
        }
    }

    /// Whether a sequence should wait for a running prefill that is computing more of its
    /// prompt than the cache holds: admitted now, it would compute (and hold) its own copy of
    /// those blocks. The wait ends when that prefill does (its blocks are cached chunk by chunk).
    private func awaitsPrefixBeingComputed(_ s: SequenceState) -> Bool {
        let bt = blockTokens
        var cached = -1
        for r in running where r.generatedCount == 0 && r.computed < r.promptCount {
            let limit = min(s.tokens.count - 1, r.promptCount)
            guard limit >= bt, s.tokens[0] == r.tokens[0] else { continue }
            var common = 0
            s.tokens.withUnsafeBufferPointer { a in
                r.tokens.withUnsafeBufferPointer { b in
                    while common < limit && a[common] == b[common] { common += 1 }
                }
            }
            if cached < 0 { cached = memPool.cachedBlockCount(s.tokens) }
            if common / bt > cached { return true }
        }
        return false
    }

    /// Cache-aware admission order: sequences that already hold KV or were preempted keep the
    /// head; then those overtaken `agingBound` times, by arrival; then the rest by how many
    /// leading blocks the prompt tree caches for them (most first), ties by arrival. Only the
    /// first `window` sequences are looked at, which bounds the cost per step.
    private func orderWaiting() {
        let window = min(waiting.count, 64)
        func rank(_ s: SequenceState) -> (Int, Int, Int) {
            if !s.blocks.isEmpty || s.admittedAt > 0 { return (0, 0, 0) }
            if s.overtaken >= configuration.agingBound { return (1, 0, s.arrival) }
            return (2, -memPool.cachedBlockCount(s.tokens), s.arrival)
        }
        let head = waiting[0..<window].enumerated().map { (rank($0.element), $0.offset, $0.element) }
            .sorted { ($0.0.0, $0.0.1, $0.0.2, $0.1) < ($1.0.0, $1.0.1, $1.0.2, $1.1) }
        waiting.replaceSubrange(0..<window, with: head.map(\.2))
    }

    private func add(_ s: SequenceState, count n: Int) {
        let end = s.computed + n
        batch.add(tokens: s.tokens[s.computed..<end], startPosition: s.computed, blockTable: s.blocks,
                  wantsLogits: end == s.tokens.count)
        scheduled.append(s)
    }

    /// Grows the sequence's block table to cover `tokens` positions.
    private func ensureBlocks(_ s: SequenceState, tokens: Int) -> Bool {
        let needed = model.kvLayout.blocks(forTokens: tokens) - s.blocks.count
        if needed <= 0 { return true }
        guard let new = memPool.allocate(needed) else { return false }
        s.blocks.append(contentsOf: new.lazy.map(\.rawValue))
        return true
    }

    /// Recompute-style preemption: the newest running sequence (not `keep`, not already in this
    /// batch) drops its KV and goes back to the head of the queue.
    private func preemptNewest(except keep: SequenceState) -> Bool {
        let candidates = running.indices.filter { i in
            running[i] !== keep && !scheduled.contains { $0 === running[i] }
        }
        if let victimIndex = candidates.max(by: { running[$0].admittedAt < running[$1].admittedAt }) {
            let victim = running.remove(at: victimIndex)
            dropKV(of: victim)
            waiting.insert(victim, at: 0)
            return true
        }
        // Waiting sequences that hold blocks (adopted from a prefill instance) give them up last.
        if let victim = waiting.last(where: { !$0.blocks.isEmpty }) {
            dropKV(of: victim)
            return true
        }
        return false
    }

    /// Recompute-style preemption: the KV goes (into the cache, when caching) and will be
    /// recomputed, from the cache where it survives, when the sequence runs again.
    private func dropKV(of victim: SequenceState) {
        if configuration.prefixCaching { cacheComputedBlocks(of: victim) }
        releaseBlocks(of: victim)
        victim.computed = 0
        victim.cachedTokens = 0
    }

    // MARK: - Output

    private func accept(_ token: Int32, into s: SequenceState) {
        s.sampler.accept(token)
        var text = ""
        if s.stopTokens.contains(token) {
            s.finish = .stop
            text = s.stopMatcher.flush()
            s.tokens.append(token)
        } else {
            s.tokens.append(token)
            let piece = s.decoder.append(token)
            let (emit, stopped) = s.stopMatcher.feed(piece)
            text = emit
            if stopped {
                s.finish = .stop
            } else if s.generatedCount >= s.maxTokens || s.tokens.count >= model.maxContext {
                s.finish = .length
                let (tail, hit) = s.stopMatcher.feed(s.decoder.finish())
                text += tail + (hit ? "" : s.stopMatcher.flush())
                if hit { s.finish = .stop }
            }
        }
        outputs.append(RequestOutput(id: s.id, token: token, text: text, finishReason: s.finish,
                                     promptTokens: s.promptCount, cachedTokens: s.cachedTokens,
                                     generatedTokens: s.generatedCount))
        if s.finish != nil { release(s) }
    }

    private func finish(_ s: SequenceState) {
        outputs.append(RequestOutput(id: s.id, token: nil, text: "", finishReason: s.finish,
                                     promptTokens: s.promptCount, cachedTokens: s.cachedTokens,
                                     generatedTokens: s.generatedCount))
        release(s)
        running.removeAll { $0 === s }
    }

    /// A finished or aborted sequence: cache what it computed (prompt and answer, so the next
    /// turn of a conversation finds its whole history), then drop its references.
    private func release(_ s: SequenceState) {
        if configuration.prefixCaching { cacheComputedBlocks(of: s) }
        if configuration.retainFinished && s.finish != nil && s.computed > 0 {
            let n = min(s.blocks.count, model.kvLayout.blocks(forTokens: s.computed))
            memPool.retain(s.blocks[0..<n].map { BlockID(rawValue: $0) })
            finished.append(FinishedSequence(id: s.id, tokens: Array(s.tokens[0..<s.computed]), blocks: Array(s.blocks[0..<n])))
        }
        releaseBlocks(of: s)
    }

    // MARK: - Prefix cache

    /// Starts a sequence from the longest cached prefix of its tokens: those blocks are retained
    /// (locked) and skipped by prefill. At least one token is always left to compute, since
    /// sampling needs the logits of the last one.
    private func attachCachedPrefix(_ s: SequenceState) {
        let bt = blockTokens
        let blocks = memPool.acquirePrefix(s.tokens, maxBlocks: (s.tokens.count - 1) / bt)
        guard !blocks.isEmpty else { return }
        s.blocks = blocks.map(\.rawValue)
        s.computed = blocks.count * bt
        s.cachedTokens = min(s.computed, s.promptCount)
    }

    /// Inserts the sequence's whole computed blocks into the prompt tree; blocks that another
    /// sequence cached first are swapped for the cached copies (same tokens, same KV).
    private func cacheComputedBlocks(of s: SequenceState) {
        let full = min(s.computed / blockTokens, s.blocks.count)
        guard full > 0 else { return }
        var table = s.blocks[0..<full].map { BlockID(rawValue: $0) }
        memPool.insertAndAdopt(tokens: Array(s.tokens[0..<full * blockTokens]), table: &table)
        for i in 0..<full { s.blocks[i] = table[i].rawValue }
    }

    private func releaseBlocks(of s: SequenceState) {
        memPool.release(s.blocks.map { BlockID(rawValue: $0) })
        s.blocks.removeAll()
    }
}
