// `explain` and its pictures. This file and Reports.swift are the only ones that import
// the report modules.
import Foundation
import FoundationXML
import PowercutExplain
import PowercutModel
import PowercutTrace

/// Target `explain`: what `explain FILE --svg S --html H` does with a trace (text or
/// binary): the explanation, its text story, the SVG timeline and the HTML page.
///
/// It explains the first error (the default), then a selection the input's hash chooses:
/// the Nth finding, one byte of a declared pmem range, or an op's destination — as
/// `--finding`, `--byte` and `--op` choose them. The event limit and the replay options
/// also come from the hash. A selection the
/// trace does not have must be refused with a one-line message. The SVG must be
/// well-formed XML.
public enum ExplainTarget {
    public static func run(_ input: FuzzInput) -> Int32 {
        guard let trace = readTrace(input.bytes) else { return 0 }
        let h = input.hash
        let limits = [200, 0, 1, 2, 7]
        let explainer = Explainer(options: input.replayOptions, limit: limits[Int((h >> 8) % 5)])
        explain(trace, explainer, .firstError)
        let chosen = selector(trace, h >> 16)
        if chosen != .firstError { explain(trace, explainer, chosen) }
        return 0
    }

    static func explain(_ trace: Trace, _ explainer: Explainer, _ selector: ExplainSelector) {
        let explanation: Explanation
        do {
            explanation = try explainer.explain(trace, file: inputName, selector: selector)
        } catch {
            // A usage error (no such finding, byte or op): one line; it may list the
            // trace's pmem ranges, so it is not held to the quoted-input bound.
            checkRejection("\(error)", what: "explain", maxBytes: 1 << 16)
            return
        }
        let story = ExplainTextReport().render(explanation)
        let picture = TimelinePicture(explanation)
        checkXML(picture.svg(), "SVG timeline")
        _ = picture.html(story: story)
    }

    static func selector(_ trace: Trace, _ h: UInt64) -> ExplainSelector {
        switch h % 4 {
        case 0:
            return .firstError
        case 1:
            return .finding(1 + Int((h >> 2) % 4))
        case 2:
            let pmem = trace.header.pmem
            guard !pmem.isEmpty else { return .byte(h >> 2) }
            let r = pmem[Int((h >> 2) % UInt64(pmem.count))]
            // The first, the last or a middle byte of the range.
            let offsets: [UInt64] = [0, r.length &- 1, r.length / 2]
            return .byte(r.base &+ offsets[Int((h >> 8) % 3)])
        default:
            let ops = trace.events.filter { $0.kind == .opBegin }.map(\.op)
            guard !ops.isEmpty else { return .op(h >> 2) }
            return .op(ops[Int((h >> 2) % UInt64(ops.count))])
        }
    }
}
