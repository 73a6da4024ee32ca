import ArgumentParser

@main
struct Powercut: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "powercut",
        abstract: "Crash-consistency verifier for persistent-memory copy paths.",
        discussion: """
            Exit status: 0 no error finding, 1 error findings (or --error-exitcode N), \
            64 usage error, 65 bad trace or input data, 70 internal error.
            """,
        version: PowercutVersion.string,
        subcommands: [Check.self, Convert.self, Record.self, Sweep.self, SweepWorker.self, Explain.self, Show.self, Info.self]
    )
}
