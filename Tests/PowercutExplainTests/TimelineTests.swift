import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import PowercutModel
import PowercutTrace
@testable import PowercutExplain
import PowercutSymbolize

/// The elements of an SVG document: name, attributes and text, in order.
final class SVGElements: NSObject, XMLParserDelegate {
    struct Element {
        var name: String
        var attributes: [String: String]
        var text = ""
    }
    var elements: [Element] = []
    private var open: [Int] = []

    static func parse(_ svg: String) -> SVGElements? {
        let p = XMLParser(data: Data(svg.utf8))
        let d = SVGElements()
        p.delegate = d
        return p.parse() ? d : nil
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        open.append(elements.count)
        elements.append(Element(name: name, attributes: attributes))
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        open.removeLast()
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if let i = open.last { elements[i].text += string }
    }

    func texts(_ name: String = "text") -> [String] { elements.filter { $0.name == name }.map(\.text) }
}

@Suite struct TimelineTests {
    @Test func thePictureHasTheRowsTheMarksThePromiseAndTheLostBytes() throws {
        let ex = try explained(tailNotWrittenBack, .finding(2))
        let svg = TimelinePicture(ex).svg()
        let doc = try #require(SVGElements.parse(svg), "the SVG is well-formed XML")
        let texts = doc.texts()
        // Rows: the line, and under it the bytes that were lost.
        #expect(texts.contains("line 0x10040"))
        #expect(texts.contains("0x10048-0x10049 tail"))
        #expect(ex.rows.map(\.lost) == [false, true])
        // Event marks, the skipped events, the op bracket.
        for mark in ["#0", "#3", "#4", "#5", "#6", "ntstore 0x10040 +8", "store 0x10048 +2", "sfence", "op 1 end", "2 elsewhere"] {
            #expect(texts.contains(mark), "mark \(mark)")
        }
        #expect(texts.contains("op 1 memcpy_flushcache"))
        // The promise line and its words; the lost cell outlined.
        #expect(texts.contains("cut 7: durability"))
        let lines = doc.elements.filter { $0.name == "line" && $0.attributes["stroke"] == "#b71c1c" }
        #expect(lines.count == 2, "the promise line and its legend sample")
        let outlines = doc.elements.filter { $0.name == "rect" && $0.attributes["stroke-width"] == "3.5" }
        #expect(outlines.count == 1)
        // A cell per row and column, coloured by state; the lost cell is dirty.
        let cellTitles = doc.texts("title").filter { $0.hasPrefix("0x10048-0x10049 tail ") }
        #expect(cellTitles == [
            "0x10048-0x10049 tail after #0 (cut 1): untouched",
            "0x10048-0x10049 tail across #1-#2: untouched",
            "0x10048-0x10049 tail after #3 (cut 4): untouched",
            "0x10048-0x10049 tail after #4 (cut 5): dirty",
            "0x10048-0x10049 tail after #5 (cut 6): dirty",
            "0x10048-0x10049 tail after #6 (cut 7): dirty",
        ])
        // Under the line's cell after the drain, a strip shows most of its bytes durable.
        #expect(doc.texts("title").contains("8 durable") && doc.texts("title").contains("2 dirty"))
        let dirtyCells = doc.elements.filter { $0.name == "rect" && $0.attributes["fill"] == TimelinePicture.colour(.dirty) }
        #expect(dirtyCells.count >= 6)
        // The legend names every state a new reader meets.
        for words in ["durable — survives a power failure", "dirty — in the cache, not written back",
                      "flushing — written back, not fenced yet", "wc — non-temporal store, not fenced yet",
                      "still at risk where durability was promised", "the cut where durability was promised"] {
            #expect(texts.contains(words), "legend: \(words)")
        }
        // Sized to hold everything: the viewBox matches width and height.
        let root = try #require(doc.elements.first)
        #expect(root.name == "svg" && root.attributes["viewBox"] == "0 0 \(root.attributes["width"]!) \(root.attributes["height"]!)")
    }

    @Test func queuedBytesGetTheirColourAndTheEndOfTheTraceIsMarked() throws {
        let ex = try explained("""
            domain wpq
            pmem 0x1000 0x1000
            op 1 begin dst=0x1000 len=8
            store 0x1000 8
            clwb 0x1000
            op 1 end
            sfence
            """)
        let doc = try #require(SVGElements.parse(TimelinePicture(ex).svg()))
        #expect(doc.texts().contains("queued — in the controller's queue, no flush hint yet"))
        #expect(doc.texts().contains("cut 5: end of trace,"))
        #expect(doc.elements.contains { $0.name == "rect" && $0.attributes["fill"] == TimelinePicture.colour(.queued) })
    }

    @Test func theHTMLHoldsThePictureTheStoryAndTheTable() throws {
        let ex = try explained(tailNotWrittenBack, .finding(2))
        let story = ExplainTextReport().render(ex)
        let html = TimelinePicture(ex).html(story: story)
        #expect(html.hasPrefix("<!doctype html>"))
        #expect(html.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(html.contains("<pre>== t.pct: 7 events"))
        #expect(html.contains("<th>line 0x10040</th><th>0x10048-0x10049 tail</th>"))
        #expect(html.contains("<tr class=\"promise\"><td>#6</td><td>7</td><td>sfence"))
        #expect(html.contains("<td class=\"dirty lost\">dirty</td>"))
        #expect(html.contains("<td>#1-#2</td>"))
    }

    @Test func manyLinesAreBandedAndLongRunsElided() throws {
        var body = "pmem 0 0x10000\nop 1 begin dst=0 len=8192 contract=persist\n"
        for i in 0..<128 { body += "ntstore \(i * 64) 64\n" }
        body += "op 1 end\n"
        let ex = try explained(body, .op(1), limit: 20)
        #expect(ex.lines.count == 128)
        #expect(ex.rows.count == 32 && ex.rows[0].label == "lines 0x0-0xc0 (4)")
        let svg = TimelinePicture(ex).svg()
        let doc = try #require(SVGElements.parse(svg))
        #expect(doc.texts().contains("110 left out"))
    }
}
