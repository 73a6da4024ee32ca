import PowercutModel
import PowercutSymbolize
import PowercutOutput
import PowercutTrace
import PowercutTriage

/// One JUnit test case: an op of a checked trace, or a case of a sweep.
public struct JUnitCase: Sendable, Equatable {
    public var classname: String
    public var name: String
    /// nil: the case passed.
    public var failure: Failure?
    /// Text for `<system-out>` (warnings and notes of a passing case), "" for none.
    public var output: String

    public struct Failure: Sendable, Equatable {
        /// The rule ID of the first error finding.
        public var type: String
        /// Its headline (and how many more findings there are).
        public var message: String
        /// The Valgrind-style report of the case's findings.
        public var text: String

        public init(type: String, message: String, text: String) {
            self.type = type
            self.message = message
            self.text = text
        }
    }

    public init(classname: String, name: String, failure: Failure? = nil, output: String = "") {
        self.classname = classname
        self.name = name
        self.failure = failure
        self.output = output
    }
}

/// One `<testsuite>`: a trace, or a routine of a sweep.
public struct JUnitSuite: Sendable, Equatable {
    public var name: String
    public var properties: [(name: String, value: String)]
    public var cases: [JUnitCase]
    /// What holds for the whole trace (printed in the suite's `<system-out>`).
    public var notices: [TraceNotice]

    public init(name: String, properties: [(name: String, value: String)] = [], cases: [JUnitCase],
                notices: [TraceNotice] = []) {
        self.name = name
        self.properties = properties
        self.cases = cases
        self.notices = notices
    }

    public static func == (a: JUnitSuite, b: JUnitSuite) -> Bool {
        a.name == b.name && a.cases == b.cases && a.notices == b.notices && a.properties.map { [$0.name, $0.value] } == b.properties.map { [$0.name, $0.value] }
    }
}

/// `--format junit`: JUnit XML for CI test reports (GitLab `artifacts:reports:junit`,
/// Jenkins, GitHub test-report actions).
///
///     <testsuites name="powercut" tests="2" failures="1" errors="0" skipped="0">
///       <testsuite name="TRACE" tests="…" failures="…" errors="0" skipped="0">
///         <properties><property name="domain" value="adr"/>…</properties>
///         <testcase classname="TRACE" name="op 1 (memcpy_flushcache)">
///           <failure type="dirty-at-return" message="HEADLINE">VALGRIND-STYLE REPORT</failure>
///         </testcase>
///
/// One test case per op of a trace (findings outside every op, such as `durable`
/// assertions, go to a case named "outside ops", present when there are such findings
/// or no op at all). A case fails when it has a reported error finding; the failure's
/// type is the rule ID of the first one, its message that finding's headline, its text
/// the Valgrind-style report of all the case's findings. Warnings and notes of a
/// passing case go to `<system-out>`. Findings a baseline or suppression leaves out are
/// not shown (the suite's properties count them). No timestamps or durations: the same
/// trace gives the same bytes.
public struct JUnitReport {
    public var frames: FrameResolver

    public init(frames: FrameResolver = FrameResolver()) { self.frames = frames }

    /// The suites of checked traces. The traces must have been replayed with
    /// `ReplayOptions.keepOps` so that passing ops have test cases too.
    public func suites(_ triage: Triage) -> [JUnitSuite] {
        let text = TextReport(frames: frames)
        return zip(triage.traces, triage.entries).map { t, es in
            var shown: [Finding] = []
            var known = 0, suppressed = 0
            for (f, e) in zip(t.result.findings, es) {
                switch e.status {
                case .reported: shown.append(f)
                case .known: known += 1
                case .suppressed: suppressed += 1
                }
            }
            var ops = t.result.ops
            // Ops a finding names but the result does not keep (replayed without keepOps).
            for f in shown {
                if let op = f.op, !ops.contains(where: { $0.id == op.id }) { ops.append(op) }
            }
            ops.sort { $0.begin < $1.begin }
            var cases: [JUnitCase] = ops.map { op in
                testCase(t, name: op.label, findings: shown.filter { $0.op?.id == op.id }, text: text)
            }
            let outside = shown.filter { $0.op == nil }
            if !outside.isEmpty || ops.isEmpty {
                cases.append(testCase(t, name: "outside ops", findings: outside, text: text))
            }
            return JUnitSuite(name: t.file, properties: properties(t, known: known, suppressed: suppressed), cases: cases,
                              notices: t.result.notices)
        }
    }

    private func testCase(_ t: CheckedTrace, name: String, findings: [Finding], text: TextReport) -> JUnitCase {
        let body = findings.map { text.render($0, in: t) }.joined(separator: "\n")
        guard let first = findings.first(where: { $0.severity == .error }) else {
            return JUnitCase(classname: t.file, name: name, output: body)
        }
        let more = findings.count - 1
        let message = first.headline + (more > 0 ? " (and \(count(more, "more finding")))" : "")
        return JUnitCase(classname: t.file, name: name,
                         failure: .init(type: first.rule.rawValue, message: message, text: body))
    }

    public func render(_ triage: Triage) -> String { render(suites: suites(triage)) }

    /// The document for checked traces, printed to `out` as it goes. Trace i, when the
    /// log has a part i (its `OpSpool`, from an `OpSeries` observer, moved in), has its
    /// passing ops read back from the log, a block at a time, so memory follows the
    /// findings, not the ops; a trace past the log's parts uses `result.ops`
    /// (`ReplayOptions.keepOps`). The same bytes as `render(_:)` either way.
    public func render(_ triage: Triage, ops log: OpLog, to out: ReportOutput) throws {
        let text = TextReport(frames: frames)
        // First what the headers count: cases and failures per trace.
        struct Plan {
            var shown: [Finding] = []
            var byOp: [UInt64: [Finding]] = [:]
            /// Ops the findings name that did not end (no record in the spool).
            var extra: [OpInfo] = []
            var outside: [Finding] = []
            var known = 0, suppressed = 0
            var tests = 0, failures = 0
            var outsideCase = false
        }
        var plans: [Plan] = []
        for (i, (t, es)) in zip(triage.traces, triage.entries).enumerated() {
            var p = Plan()
            for (f, e) in zip(t.result.findings, es) {
                switch e.status {
                case .reported: p.shown.append(f)
                case .known: p.known += 1
                case .suppressed: p.suppressed += 1
                }
            }
            var opCount: Int
            var failing = Set<UInt64>()
            if i < log.parts.count {
                opCount = log.parts[i].endedCount
                for f in p.shown {
                    guard let op = f.op else { continue }
                    if p.byOp[op.id] == nil && op.end == nil { p.extra.append(op) }
                    p.byOp[op.id, default: []].append(f)
                }
            } else {
                var ops = t.result.ops
                for f in p.shown {
                    if let op = f.op, !ops.contains(where: { $0.id == op.id }) { ops.append(op) }
                }
                ops.sort { $0.begin < $1.begin }
                p.extra = ops
                opCount = 0
                for f in p.shown { if let op = f.op { p.byOp[op.id, default: []].append(f) } }
            }
            p.extra.sort { $0.begin < $1.begin }
            opCount += p.extra.count
            for f in p.shown where f.severity == .error { if let op = f.op { failing.insert(op.id) } }
            p.outside = p.shown.filter { $0.op == nil }
            p.outsideCase = !p.outside.isEmpty || opCount == 0
            p.tests = opCount + (p.outsideCase ? 1 : 0)
            p.failures = failing.count + (p.outside.contains { $0.severity == .error } ? 1 : 0)
            plans.append(p)
        }
        try out.write(Self.documentHead(name: "powercut", tests: plans.reduce(0) { $0 + $1.tests },
                                        failures: plans.reduce(0) { $0 + $1.failures }))
        for (i, t) in triage.traces.enumerated() {
            let p = plans[i]
            let suite = JUnitSuite(name: t.file, properties: properties(t, known: p.known, suppressed: p.suppressed), cases: [])
            try out.write(Self.suiteHead(suite, tests: p.tests, failures: p.failures))
            func emit(_ label: String, _ id: UInt64) throws {
                try out.write(Self.caseXML(testCase(t, name: label, findings: p.byOp[id] ?? [], text: text)))
            }
            var extras = p.extra[...]
            if i < log.parts.count {
                let names = log.parts[i].names
                try log.forEachEnded(of: i) { id, begin, _, name in
                    while let e = extras.first, e.begin < begin {
                        try emit(e.label, e.id)
                        extras = extras.dropFirst()
                    }
                    let label = "op \(id)" + (name > 0 && Int(name) <= names.count ? " (\(names[Int(name) - 1]))" : "")
                    try emit(label, id)
                }
            }
            for e in extras { try emit(e.label, e.id) }
            if p.outsideCase {
                try out.write(Self.caseXML(testCase(t, name: "outside ops", findings: p.outside, text: text)))
            }
            try out.write(Self.suiteTail(notices: t.result.notices))
        }
        try out.write("</testsuites>\n")
    }

    private func properties(_ t: CheckedTrace, known: Int, suppressed: Int) -> [(name: String, value: String)] {
        let r = t.result
        return [
            ("form", t.form.rawValue), ("domain", r.domain.description), ("lineSize", String(r.lineSize)),
            ("events", String(r.events)), ("ops", String(r.opCount)),
            ("known", String(known)), ("suppressed", String(suppressed)),
            ("checkedAnything", String(r.checkedAnything)), ("storesOutsidePmem", String(r.storesOutsidePmem)),
            ("omittedFindings", String(r.omittedFindingCount)),
        ]
    }

    /// Any suites (a sweep builds its own) as one document.
    public func render(suites: [JUnitSuite], name: String = "powercut") -> String {
        let tests = suites.reduce(0) { $0 + $1.cases.count }
        let failures = suites.reduce(0) { $0 + $1.cases.count { $0.failure != nil } }
        var out = Self.documentHead(name: name, tests: tests, failures: failures)
        for s in suites {
            out += Self.suiteHead(s, tests: s.cases.count, failures: s.cases.count { $0.failure != nil })
            for c in s.cases { out += Self.caseXML(c) }
            out += Self.suiteTail(notices: s.notices)
        }
        out += "</testsuites>\n"
        return out
    }

    static func documentHead(name: String, tests: Int, failures: Int) -> String {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            + "<testsuites name=\"\(xmlEscape(name))\" tests=\"\(tests)\" failures=\"\(failures)\" errors=\"0\" skipped=\"0\">\n"
    }

    static func suiteHead(_ s: JUnitSuite, tests: Int, failures: Int) -> String {
        var out = "  <testsuite name=\"\(xmlEscape(s.name))\" tests=\"\(tests)\" failures=\"\(failures)\" errors=\"0\" skipped=\"0\">\n"
        if !s.properties.isEmpty {
            out += "    <properties>\n"
            for p in s.properties {
                out += "      <property name=\"\(xmlEscape(p.name))\" value=\"\(xmlEscape(p.value))\"/>\n"
            }
            out += "    </properties>\n"
        }
        return out
    }

    /// Closes a suite; what holds for the whole trace (nothing checked, stores outside
    /// pmem, findings left out) goes to the suite's `<system-out>`, one notice a line.
    static func suiteTail(notices: [TraceNotice]) -> String {
        var out = ""
        if !notices.isEmpty {
            out += "    <system-out>" + xmlEscape(notices.map { $0.title + "\n" }.joined(), attribute: false) + "</system-out>\n"
        }
        return out + "  </testsuite>\n"
    }

    static func caseXML(_ c: JUnitCase) -> String {
        var out = "    <testcase classname=\"\(xmlEscape(c.classname))\" name=\"\(xmlEscape(c.name))\""
        if c.failure == nil && c.output.isEmpty { return out + "/>\n" }
        out += ">\n"
        if let failure = c.failure {
            out += "      <failure type=\"\(xmlEscape(failure.type))\" message=\"\(xmlEscape(failure.message))\">"
            out += xmlEscape(failure.text, attribute: false) + "</failure>\n"
        }
        if !c.output.isEmpty {
            out += "      <system-out>" + xmlEscape(c.output, attribute: false) + "</system-out>\n"
        }
        return out + "    </testcase>\n"
    }
}
