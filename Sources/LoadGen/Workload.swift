/// The three workload shapes of the MemServe paper's evaluation.
public enum WorkloadKind: String, CaseIterable, Codable, Sendable {
    /// Multi-turn chats; each turn resends the whole history.
    case sharegpt
    /// Long documents with several questions each, interleaved across documents.
    case loogle
    /// Agent traces: a shared instruction and examples, then a trace that grows every step.
    case react
}

/// One chat message.
public struct ChatMessage: Codable, Sendable, Equatable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// What one request sends: chat messages (`/v1/chat/completions`) or a text prompt
/// (`/v1/completions`).
public enum Prompt: Sendable, Equatable {
    case chat([ChatMessage])
    case text(String)

    /// The prompt as one string (messages as `role: content` lines), for sizing and prefix checks.
    public var flattened: String {
        switch self {
        case .text(let s): return s
        case .chat(let messages): return messages.map { "\($0.role): \($0.content)\n" }.joined()
        }
    }
}

/// Requests sent one after another, each built from the previous prompt and the answer the
/// server gave to it: the prefix that a cache can reuse grows with every step.
public struct Session: Sendable, Equatable {
    public enum Shape: Sendable, Equatable {
        /// A chat: step k sends every earlier user message with its answer, then `users[k]`.
        case chat(users: [String])
        /// A growing text: step k sends `head`, then for each earlier step i its answer and
        /// `appends[i]` (an agent's observation and the cue for its next thought).
        case trace(head: String, appends: [String])
    }

    public var id: Int
    /// What the session shares a prefix with beyond itself: the document of a LooGLE
    /// question; otherwise the session's own id.
    public var group: Int
    public var shape: Shape
    /// `max_tokens` of each step: the workload's response lengths.
    public var maxTokens: [Int]

    public var steps: Int { maxTokens.count }

    /// The prompt of `step`, given the answers to the steps before it.
    public func prompt(step: Int, answers: [String]) -> Prompt {
        precondition(step < steps && answers.count >= step, "step \(step) needs \(step) answers")
        switch shape {
        case .chat(let users):
            var messages: [ChatMessage] = []
            for i in 0..<step {
                messages.append(ChatMessage(role: "user", content: users[i]))
                messages.append(ChatMessage(role: "assistant", content: answers[i]))
            }
            messages.append(ChatMessage(role: "user", content: users[step]))
            return .chat(messages)
        case .trace(let head, let appends):
            var text = head
            for i in 0..<step { text += answers[i] + appends[i] }
            return .text(text)
        }
    }
}

/// How big a workload is and how its lengths are scaled.
public struct WorkloadOptions: Sendable, Codable, Equatable {
    public var seed: UInt64 = 1
    /// Total requests (the last session is cut short to hit it exactly).
    public var requests: Int = 100
    /// Longest prompt plus answer, in tokens: sessions stop growing before they reach 90% of it.
    public var maxContext: Int = 8192
    /// Multiplies every sampled length (prompts, answers, documents, observations); 1 is the
    /// published shape. The fixed agent prefix is not scaled.
    public var lengthScale: Double = 1
    public var tokens = TokenEstimate()

    public init(seed: UInt64 = 1, requests: Int = 100, maxContext: Int = 8192, lengthScale: Double = 1,
                tokens: TokenEstimate = TokenEstimate()) {
        self.seed = seed
        self.requests = requests
        self.maxContext = maxContext
        self.lengthScale = lengthScale
        self.tokens = tokens
    }

    /// The token budget a session must stay under.
    var budget: Int { Int(Double(maxContext) * 0.9) }
}

/// A generated workload: sessions in arrival order.
public struct Workload: Sendable, Equatable {
    public var kind: WorkloadKind
    public var options: WorkloadOptions
    public var sessions: [Session]

    public var requestCount: Int { sessions.reduce(0) { $0 + $1.steps } }

    /// The workload `kind` for `options`, the same for the same options on every machine.
    public init(kind: WorkloadKind, options: WorkloadOptions) {
        self.kind = kind
        self.options = options
        switch kind {
        case .sharegpt: sessions = ShareGPTShape.sessions(options)
        case .loogle: sessions = LooGLEShape.sessions(options)
        case .react: sessions = ReActShape.sessions(options)
        }
    }
}

/// Cuts the session list so that it holds exactly `requests` requests.
func trim(_ sessions: [Session], to requests: Int) -> [Session] {
    var out: [Session] = []
    var left = requests
    for var s in sessions where left > 0 {
        if s.steps > left {
            s.maxTokens = Array(s.maxTokens.prefix(left))
            switch s.shape {
            case .chat(let users): s.shape = .chat(users: Array(users.prefix(left)))
            case .trace(let head, let appends): s.shape = .trace(head: head, appends: Array(appends.prefix(max(0, left - 1))))
            }
        }
        left -= s.steps
        out.append(s)
    }
    return out
}

func scaled(_ tokens: Double, _ options: WorkloadOptions, min lower: Int) -> Int {
    max(lower, Int((tokens * options.lengthScale).rounded()))
}
