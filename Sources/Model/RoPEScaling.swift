import Foundation
import GGUF
import Kernels

/// How a model stretches RoPE beyond the context it was trained on, as its GGUF says.
///
/// Angles are `position · invFreq[i] / frequencyFactors[i] / linearFactor` with
/// `invFreq[i] = base^(-2i / headDim)`, as ggml's rope computes them (`freq_scale` =
/// 1 / linear factor, `freq_factors` = the `rope_freqs` tensor).
public struct RoPEScaling: Sendable, Equatable {
    /// Positions are divided by this (`rope.scaling.type` "linear" with `rope.scaling.factor`).
    public var linearFactor: Double = 1
    /// Per-dimension-pair divisors of the frequencies, `[headDim / 2]`: the `rope_freqs.weight`
    /// tensor llama.cpp's converter writes for Llama 3.1+ ("llama3" scaling).
    public var frequencyFactors: [Float]?
    /// The context the model was trained on before scaling, if the file says.
    public var originalContextLength: Int?

    public init(linearFactor: Double = 1, frequencyFactors: [Float]? = nil, originalContextLength: Int? = nil) {
        self.linearFactor = linearFactor
        self.frequencyFactors = frequencyFactors
        self.originalContextLength = originalContextLength
    }

    public static let none = RoPEScaling()

    /// Llama 3.1's published frequency factors (Meta's `apply_scaling`): wavelengths shorter than
    /// `original / highFrequencyFactor` are kept, longer than `original / lowFrequencyFactor` are
    /// stretched by `factor`, and those between are interpolated smoothly.
    public static func llama3FrequencyFactors(base: Double, headDim: Int, factor: Double, originalContextLength: Int,
                                              lowFrequencyFactor: Double = 1, highFrequencyFactor: Double = 4) -> [Float] {
        let original = Double(originalContextLength)
        let lowWavelength = original / lowFrequencyFactor, highWavelength = original / highFrequencyFactor
        return (0..<headDim / 2).map { i in
            let invFreq = Foundation.pow(base, -2 * Double(i) / Double(headDim))
            let wavelength = 2 * Double.pi / invFreq
            if wavelength < highWavelength { return 1 }
            if wavelength > lowWavelength { return Float(factor) }
            let smooth = (original / wavelength - lowFrequencyFactor) / (highFrequencyFactor - lowFrequencyFactor)
            return Float(1 / ((1 - smooth) / factor + smooth))
        }
    }

    /// `invFreq[i]` of every dimension pair after scaling, in double precision.
    func inverseFrequencies(base: Double, headDim: Int) -> [Double] {
        (0..<headDim / 2).map { i in
            let factor = frequencyFactors.map { Double($0[i]) } ?? 1
            return Foundation.pow(base, -2 * Double(i) / Double(headDim)) / factor / linearFactor
        }
    }
}

extension ArchitectureMetadata {
    /// Reads `rope.scaling.*` and the `rope_freqs.weight` tensor.
    /// - Throws: `.unsupportedRoPEScaling` for YaRN, LongRoPE or an unknown type (they change more
    ///   than the angles), `.tensorShape` for a `rope_freqs` of the wrong length.
    func ropeScaling(base: Double, headDim: Int) throws(ModelError) -> RoPEScaling {
        let type = file.metadata[prefix + "rope.scaling.type"]?.string ?? "linear"
        // llama.cpp also reads the factor under its older name.
        let factor = optionalDouble("rope.scaling.factor") ?? optionalDouble("rope.scale_linear") ?? 0
        var scaling = RoPEScaling(originalContextLength: optionalInt("rope.scaling.original_context_length"))
        switch type {
        case "none":
            break
        case "linear":
            // A factor of 0 or 1 means no scaling, as in llama.cpp.
            if factor > 0 { scaling.linearFactor = factor }
        case "llama3":
            // Written by some tools instead of the factors tensor; the published defaults fill gaps.
            guard factor > 0 else { throw .invalidConfiguration("rope.scaling.type llama3 needs rope.scaling.factor") }
            guard let original = scaling.originalContextLength else {
                throw .missingMetadata(prefix + "rope.scaling.original_context_length")
            }
            scaling.frequencyFactors = RoPEScaling.llama3FrequencyFactors(
                base: base, headDim: headDim, factor: factor, originalContextLength: original,
                lowFrequencyFactor: optionalDouble("rope.scaling.low_freq_factor") ?? 1,
                highFrequencyFactor: optionalDouble("rope.scaling.high_freq_factor") ?? 4)
        default:
            throw .unsupportedRoPEScaling(type)
        }
        let name = "rope_freqs.weight"
        if let t = file.tensor(named: name) {
            guard t.dimensions == [headDim / 2] else { throw .tensorShape(name: name, expected: [headDim / 2], found: t.dimensions) }
            guard let format = TensorLoader.format(of: t.type), format.blockSize == 1 else {
                throw .unsupportedTensorType(name: name, type: t.type.name)
            }
            let data = file.tensorData(t)
            guard let base = data.baseAddress, data.count >= format.rowBytes(cols: headDim / 2) else {
                throw .tensorShape(name: name, expected: [headDim / 2], found: t.dimensions)
            }
            let factors = [Float](unsafeUninitializedCapacity: headDim / 2) { buf, n in
                dequantize(format, base, buf.baseAddress!, count: headDim / 2)
                n = headDim / 2
            }
            guard factors.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw .invalidConfiguration("\(name) holds a factor that is not a positive number")
            }
            scaling.frequencyFactors = factors
        }
        return scaling
    }
}
