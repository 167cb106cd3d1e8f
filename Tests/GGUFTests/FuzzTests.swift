import Foundation
import GGUF
import Kernels
import PropertyBased
import Synchronization
import Testing

/// Seeded hostile GGUF files: a valid file from `GGUFWriter` (random metadata of every value
/// type, nested arrays, tensors of several types), then broken where a parser trusts the file:
/// counts and lengths that lie, tensor offsets and sizes past the end, unknown types, huge
/// string lengths, odd alignments, truncation, flipped bits. Opening one must give a
/// `GGUFError` or a file whose every tensor lies inside it, never a crash.
enum GGUFFuzz {
    static func value(_ r: inout SplitMix64, depth: Int = 0) -> GGUFValue {
        switch Int(r.next() % UInt64(depth < 2 ? 13 : 12)) {
        case 0: return .uint8(UInt8(truncatingIfNeeded: r.next()))
        case 1: return .int8(Int8(truncatingIfNeeded: r.next()))
        case 2: return .uint16(UInt16(truncatingIfNeeded: r.next()))
        case 3: return .int16(Int16(truncatingIfNeeded: r.next()))
        case 4: return .uint32(UInt32(truncatingIfNeeded: r.next()))
        case 5: return .int32(Int32(truncatingIfNeeded: r.next()))
        case 6: return .float32(Float(bitPattern: UInt32(truncatingIfNeeded: r.next())))
        case 7: return .bool(r.next() % 2 == 0)
        case 8: return .string(text(&r))
        case 9: return .uint64(r.next())
        case 10: return .int64(Int64(bitPattern: r.next()))
        case 11: return .float64(Double(bitPattern: r.next()))
        default:
            // Homogeneous: every element repeats the first one's case.
            let first = value(&r, depth: depth + 1)
            let count = Int(r.next() % 6)
            return .array([first] + (0..<count).map { _ in same(as: first, &r) })
        }
    }

    static func same(as v: GGUFValue, _ r: inout SplitMix64) -> GGUFValue {
        switch v {
        case .string: .string(text(&r))
        case .uint32: .uint32(UInt32(truncatingIfNeeded: r.next()))
        default: v
        }
    }

    static func text(_ r: inout SplitMix64) -> String {
        let pool = ["", "a", "tokenizer.ggml.tokens", "Ġhello", "é", "日本", "🙂", "\u{0}", "\n", "<|im_start|>"]
        return (0..<Int(r.next() % 4)).map { _ in pool[Int(r.next() % UInt64(pool.count))] }.joined()
    }

    /// Types the writer can fill with raw bytes (any bit pattern is a valid block).
    static let tensorTypes: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q4_K, .q6_K, .i8, .i32]

    /// A valid file and its tensor count.
    static func validFile(_ r: inout SplitMix64) -> [UInt8] {
        let alignment = [8, 16, 32, 32, 64][Int(r.next() % 5)]
        var w = GGUFWriter(alignment: alignment, version: r.next() % 4 == 0 ? 2 : 3)
        if alignment != 32 { w.set("general.alignment", .uint32(UInt32(alignment))) }
        w.set("general.architecture", .string(r.next() % 2 == 0 ? "llama" : text(&r)))
        for i in 0..<Int(r.next() % 6) { w.set("k\(i).\(text(&r))", value(&r)) }
        for i in 0..<Int(1 + r.next() % 3) {
            let type = tensorTypes[Int(r.next() % UInt64(tensorTypes.count))]
            let rows = Int(1 + r.next() % 3)
            let dims = [type.blockSize * Int(1 + r.next() % 2), rows]
            let count = type.byteCount(elements: dims[0] * dims[1])!
            w.addTensor(name: "t\(i)", type: type, dimensions: dims, data: (0..<count).map { _ in UInt8(truncatingIfNeeded: r.next()) })
        }
        return w.bytes()
    }

    /// Values that make counts, lengths and offsets lie.
    static let lies: [UInt64] = [0, 1, 2, 3, 4, 5, 31, 33, 255, 0xFFFF, 0xFFFF_FFFF, 1 << 32, 1 << 40, 1 << 62, 1 << 63,
                                 UInt64.max, UInt64.max - 1, UInt64.max / 3, 0x7FFF_FFFF_FFFF_FFFF]

    /// A broken file and what was done to it.
    static func input(seed: UInt64) -> (bytes: [UInt8], recipe: String) {
        var r = SplitMix64(seed: seed)
        var bytes = validFile(&r)
        var recipe: [String] = []
        for _ in 0..<Int(1 + r.next() % 3) {
            let at = Int(r.next() % UInt64(bytes.count))
            switch r.next() % 8 {
            case 0:
                let lie = lies[Int(r.next() % UInt64(lies.count))]
                let width = [2, 4, 8][Int(r.next() % 3)]
                for i in 0..<width where at + i < bytes.count { bytes[at + i] = UInt8(truncatingIfNeeded: lie >> (8 * UInt64(i))) }
                recipe.append("lie \(lie) as \(width) bytes at \(at)")
            case 1:
                // The header's counts (tensors at 8, keys at 16), where every later read depends on them.
                let field = [8, 16][Int(r.next() % 2)]
                let lie = lies[Int(r.next() % UInt64(lies.count))]
                for i in 0..<8 where field + i < bytes.count { bytes[field + i] = UInt8(truncatingIfNeeded: lie >> (8 * UInt64(i))) }
                recipe.append("count at \(field) = \(lie)")
            case 2:
                bytes.removeSubrange(at...)
                recipe.append("truncated to \(at)")
            case 3:
                bytes[at] ^= UInt8(1) << (r.next() % 8)
                recipe.append("bit flip at \(at)")
            case 4:
                let n = Int(1 + r.next() % 16)
                bytes.insert(contentsOf: (0..<n).map { _ in UInt8(truncatingIfNeeded: r.next()) }, at: at)
                recipe.append("\(n) bytes inserted at \(at)")
            case 5:
                let n = min(bytes.count - at, Int(1 + r.next() % 16))
                bytes.removeSubrange(at..<(at + n))
                recipe.append("\(n) bytes removed at \(at)")
            case 6:
                // A value type or ggml type id that does not exist.
                let id = [13, 14, 40, 99, 0xFFFF_FFFF][Int(r.next() % 5)] as UInt32
                for i in 0..<4 where at + i < bytes.count { bytes[at + i] = UInt8(truncatingIfNeeded: id >> (8 * UInt32(i))) }
                recipe.append("type id \(id) at \(at)")
            default:
                for i in at..<min(bytes.count, at + Int(1 + r.next() % 8)) { bytes[i] = UInt8(truncatingIfNeeded: r.next()) }
                recipe.append("random bytes at \(at)")
            }
            if bytes.isEmpty { break }
        }
        return (bytes, recipe.joined(separator: "; "))
    }

    /// What must hold for a file that opened: every tensor inside the file and aligned, every
    /// value readable.
    static func problems(_ file: GGUFFile) -> [String] {
        var found: [String] = []
        for t in file.tensors {
            let start = file.dataOffset + t.offset
            if t.offset < 0 || start + t.byteCount > file.fileSize {
                found.append("tensor \(t.name) past the end: data at \(start), \(t.byteCount) bytes, file of \(file.fileSize)")
                continue
            }
            if t.offset % file.alignment != 0 { found.append("tensor \(t.name) misaligned") }
            if file.tensorData(t).count != t.byteCount { found.append("tensor \(t.name): data of another size") }
        }
        for key in file.metadataKeys where file.metadata[key] == nil { found.append("key \(key) listed without a value") }
        _ = file.metadata.values.map { "\($0)" }
        return found
    }
}

@Suite("Fuzzed GGUF files: a GGUFError or a sound file, never a crash")
struct GGUFFuzzTests {
    static let cases = ProcessInfo.processInfo.environment["MEMSERVE_FUZZ_GGUF_CASES"].flatMap(Int.init) ?? 2000
    /// Seeds that once found a bug, run every time.
    static let regressionSeeds: [UInt64] = []

    static func check(seed: UInt64) -> (String, Bool) {
        let (bytes, recipe) = GGUFFuzz.input(seed: seed)
        do {
            let file = try GGUFFile(bytes: bytes)
            let problems = GGUFFuzz.problems(file)
            #expect(problems.isEmpty, "seed \(seed) (\(recipe)): \(problems)")
            return ("opened", true)
        } catch {
            // Typed: whatever is thrown is a GGUFError; it must say something.
            #expect(!error.description.isEmpty, "seed \(seed) (\(recipe))")
            return (Mirror(reflecting: error).children.first?.label ?? "\(error)", false)
        }
    }

    @Test("valid files from the writer, broken by seeded mutations")
    func mutatedFiles() async {
        let tally = Tally()
        await propertyCheck(count: Self.cases, input: Generator(run: { rng in rng.next() })) { seed in
            tally.add(Self.check(seed: seed).0)
        }
        print("fuzz gguf: \(tally.summary)")
        // The generator must reach both sides: files that open and each kind of refusal.
        #expect(tally.count("opened") > 0)
        #expect(tally.kinds > 4, "\(tally.summary)")
    }

    @Test("unmutated files from the generator open", arguments: 0..<20)
    func validFilesOpen(seed: UInt64) throws {
        var r = SplitMix64(seed: seed)
        let file = try GGUFFile(bytes: GGUFFuzz.validFile(&r))
        #expect(GGUFFuzz.problems(file).isEmpty)
    }

    /// Found by the long run (scripts/fuzz-all.sh): a file cut between its tensor directory and
    /// the padded start of its data opened when its tensors were empty, and reading one trapped.
    @Test("a data section past the end of the file is refused, even for empty tensors")
    func dataSectionPastTheEnd() {
        var w = GGUFWriter()
        w.addTensor(name: "t", type: .f32, dimensions: [0], data: [])
        let whole = w.bytes()
        let dataOffset = (try? GGUFFile(bytes: whole))?.dataOffset ?? 0
        #expect(dataOffset > 4 && dataOffset == whole.count, "an empty tensor: the file ends where its data starts")
        let cut = Array(whole.prefix(dataOffset - 4))
        #expect(throws: GGUFError.truncated(what: "tensor data section", offset: dataOffset)) { try GGUFFile(bytes: cut) }
    }

    @Test("seeds that once found a bug", .enabled(if: !regressionSeeds.isEmpty))
    func regressions() {
        for seed in Self.regressionSeeds { _ = Self.check(seed: seed) }
    }
}

/// Outcomes counted across cases, for the summary a run prints.
final class Tally: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    func add(_ key: String) { counts.withLock { $0[key, default: 0] += 1 } }
    func count(_ key: String) -> Int { counts.withLock { $0[key] ?? 0 } }
    var kinds: Int { counts.withLock { $0.count } }
    var summary: String {
        counts.withLock { c in "\(c.values.reduce(0, +)) files; " + c.sorted { $0.value > $1.value }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") }
    }
}
