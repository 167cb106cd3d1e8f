import GGUF
import Kernels

/// A projection `y = W·x (+ b)`, W `[rows = out][cols = in]`, kept in the file's block format
/// (read in place from the memory-mapped file) and, optionally, as an fp32 copy for GEMM.
///
/// Decode reads the quantized form (bandwidth-bound: fewer bytes per weight wins); prefill and
/// large batches use the fp32 copy through BLAS (compute-bound: sgemm wins).
public final class Linear: @unchecked Sendable {
    public let quantized: QuantizedMatrix
    /// `[rows][cols]` fp32, or nil when dense copies are disabled.
    public let dense: UnsafeMutablePointer<Float>?
    /// `[rows]`, or nil.
    public let bias: UnsafeMutablePointer<Float>?
    /// The packed rows when they were copied out of the file (fused projections), else nil.
    private let ownedPacked: UnsafeMutableRawPointer?
    public var rows: Int { quantized.rows }
    public var cols: Int { quantized.cols }

    /// Several projections of the same input stacked along their rows (Q, K, V → one QKV),
    /// so one pass over the input and one thread-pool round produce all of them.
    init(stacking parts: [QuantizedMatrix], makeDense: Bool, bias: [Float]?, pool: ThreadPool) {
        let format = parts[0].format, cols = parts[0].cols
        precondition(parts.allSatisfy { $0.format == format && $0.cols == cols })
        let rows = parts.reduce(0) { $0 + $1.rows }
        if parts.count == 1 {
            quantized = parts[0]
            ownedPacked = nil
        } else {
            let rowBytes = format.rowBytes(cols: cols)
            let packed = UnsafeMutableRawPointer.allocate(byteCount: rows * rowBytes, alignment: 64)
            var offset = 0
            for p in parts {
                (packed + offset).copyMemory(from: p.base, byteCount: p.rows * rowBytes)
                offset += p.rows * rowBytes
            }
            quantized = QuantizedMatrix(format: format, rows: rows, cols: cols, base: packed)
            ownedPacked = packed
        }
        if makeDense {
            let d = UnsafeMutableRawPointer.allocate(byteCount: rows * cols * 4, alignment: 64)
                .bindMemory(to: Float.self, capacity: rows * cols)
            dequantize(quantized, into: d, pool: pool)
            dense = d
        } else {
            dense = nil
        }
        if let bias {
            precondition(bias.count == rows)
            let b = UnsafeMutablePointer<Float>.allocate(capacity: bias.count)
            b.initialize(from: bias, count: bias.count)
            self.bias = b
        } else {
            self.bias = nil
        }
    }

    convenience init(quantized: QuantizedMatrix, makeDense: Bool, bias: [Float]?, pool: ThreadPool) {
        self.init(stacking: [quantized], makeDense: makeDense, bias: bias, pool: pool)
    }

    deinit {
        dense.map { UnsafeMutableRawPointer($0).deallocate() }
        bias?.deallocate()
        ownedPacked?.deallocate()
    }

    /// Bytes read per pass over the quantized weights (the decode traffic).
    public var quantizedBytes: Int { quantized.rows * quantized.rowBytes }
}

/// Projections of one input whose outputs lie side by side in each output row (Q, K, V; gate,
/// up): usually one stacked `Linear`, else the parts in order.
public final class ProjectionGroup: Sendable {
    public let parts: [Linear]
    /// Output width: the parts' rows summed.
    public let rows: Int

    init(_ parts: [Linear]) {
        self.parts = parts
        rows = parts.reduce(0) { $0 + $1.rows }
    }
}

/// A heap copy of `values` (norm weights): the block that holds it deallocates it.
func heapCopy(_ values: [Float]) -> UnsafeMutablePointer<Float> {
    let p = UnsafeMutablePointer<Float>.allocate(capacity: max(values.count, 1))
    p.initialize(from: values, count: values.count)
    return p
}

/// All weights of a decoder-only transformer, viewed from a GGUF file that it keeps open.
public final class TransformerWeights: @unchecked Sendable {
    public let file: GGUFFile
    /// `[vocab][hidden]` in the file's format; rows are gathered for token embedding.
    public let embedding: QuantizedMatrix
    public let outputNorm: UnsafeMutablePointer<Float>
    /// The output head (`[vocab][hidden]`): the embedding itself when tied.
    public let output: Linear
    /// One per layer, built by the file's architecture.
    public let blocks: [any DecoderBlock]

    public init(file: GGUFFile, configuration c: TransformerConfiguration, denseCopies: Bool, pool: ThreadPool) throws(ModelError) {
        self.file = file
        let loader = TensorLoader(file: file, pool: pool, dense: denseCopies)
        embedding = try loader.matrix("token_embd.weight", rows: c.vocabularySize, cols: c.hiddenSize)
        let norm = try loader.vector("output_norm.weight", count: c.hiddenSize)
        outputNorm = .allocate(capacity: norm.count)
        outputNorm.initialize(from: norm, count: norm.count)
        if c.tiedEmbedding {
            output = Linear(quantized: embedding, makeDense: denseCopies, bias: nil, pool: pool)
        } else {
            output = try loader.linear("output.weight", rows: c.vocabularySize, cols: c.hiddenSize)
        }
        blocks = try ModelRegistry.require(c.architecture).blocks(loader, c)
    }

    deinit { outputNorm.deallocate() }

    /// Bytes of quantized weights one decode step reads (all projections and the output head).
    public var decodeBytesPerStep: Int {
        output.quantizedBytes + blocks.reduce(0) { sum, b in
            sum + b.projections.reduce(0) { $0 + $1.quantizedBytes }
        }
    }

    /// Multiply-adds per token in the projections, excluding the output head (prefill FLOPs / 2).
    public var projectionMACsPerToken: Int {
        blocks.reduce(0) { sum, b in
            sum + b.projections.reduce(0) { $0 + $1.rows * $1.cols }
        }
    }
}

/// Looks tensors up by name and checks their shape and type (what architectures load blocks with).
public struct TensorLoader {
    let file: GGUFFile
    let pool: ThreadPool
    let dense: Bool

    func info(_ name: String) throws(ModelError) -> GGUFTensorInfo {
        guard let t = file.tensor(named: name) else { throw .missingTensor(name) }
        return t
    }

    static func format(of type: GGMLType) -> WeightFormat? {
        switch type {
        case .f32: .f32
        case .f16: .f16
        case .bf16: .bf16
        case .q8_0: .q8_0
        case .q4_0: .q4_0
        case .q4_1: .q4_1
        case .q5_0: .q5_0
        case .q5_1: .q5_1
        case .q2_K: .q2_K
        case .q3_K: .q3_K
        case .q4_K: .q4_K
        case .q5_K: .q5_K
        case .q6_K: .q6_K
        default: nil
        }
    }

    func matrix(_ name: String, rows: Int, cols: Int) throws(ModelError) -> QuantizedMatrix {
        let t = try info(name)
        guard t.dimensions == [cols, rows] else {
            throw .tensorShape(name: name, expected: [cols, rows], found: t.dimensions)
        }
        guard let format = Self.format(of: t.type), cols % format.blockSize == 0 else {
            throw .unsupportedTensorType(name: name, type: t.type.name)
        }
        let data = file.tensorData(t)
        guard let base = data.baseAddress, data.count >= rows * format.rowBytes(cols: cols) else {
            throw .tensorShape(name: name, expected: [cols, rows], found: t.dimensions)
        }
        return QuantizedMatrix(format: format, rows: rows, cols: cols, base: base)
    }

    func linear(_ name: String, rows: Int, cols: Int, bias: String? = nil) throws(ModelError) -> Linear {
        let m = try matrix(name, rows: rows, cols: cols)
        let b = try bias.map { name throws(ModelError) in try vector(name, count: rows) }
        return Linear(quantized: m, makeDense: dense, bias: b, pool: pool)
    }

    /// Projections of the same input whose outputs lie side by side in each output row: one
    /// stacked matrix when they share a format, else each part on its own (K-quant mixes put
    /// `attn_v` or `ffn_down` in another format than their neighbours).
    func stacked(_ parts: [(name: String, rows: Int)], cols: Int, biases: [String]?) throws(ModelError) -> ProjectionGroup {
        var matrices: [QuantizedMatrix] = []
        for part in parts { matrices.append(try matrix(part.name, rows: part.rows, cols: cols)) }
        var partBiases: [[Float]?] = parts.map { _ in nil }
        if let biases {
            for (k, (name, part)) in zip(biases, parts).enumerated() { partBiases[k] = try vector(name, count: part.rows) }
        }
        if let first = matrices.first, matrices.allSatisfy({ $0.format == first.format }) {
            let bias: [Float]? = biases == nil ? nil : partBiases.flatMap { $0! }
            return ProjectionGroup([Linear(stacking: matrices, makeDense: dense, bias: bias, pool: pool)])
        }
        return ProjectionGroup(zip(matrices, partBiases).map { Linear(quantized: $0, makeDense: dense, bias: $1, pool: pool) })
    }

    /// A 1-D tensor as floats (norm weights, biases).
    func vector(_ name: String, count: Int) throws(ModelError) -> [Float] {
        let t = try info(name)
        guard t.dimensions == [count] else { throw .tensorShape(name: name, expected: [count], found: t.dimensions) }
        guard let format = Self.format(of: t.type), count % format.blockSize == 0 else {
            throw .unsupportedTensorType(name: name, type: t.type.name)
        }
        let data = file.tensorData(t)
        guard let base = data.baseAddress, data.count >= format.rowBytes(cols: count) else {
            throw .tensorShape(name: name, expected: [count], found: t.dimensions)
        }
        return [Float](unsafeUninitializedCapacity: count) { buf, n in
            dequantize(format, base, buf.baseAddress!, count: count)
            n = count
        }
    }
}
