import Foundation
import PackagePlugin

/// Stamps the `powercut` executable with the commit it was built from: before each
/// build, a shell asks git for the package checkout's commit (`-dirty` when tracked
/// files differ from it) and writes `BuildCommit.swift` (only when the answer changed, so an
/// unchanged checkout recompiles nothing). A build outside a git checkout, or without
/// git, says "unknown" rather than failing.
@main
struct VersionStamp: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let out = context.pluginWorkDirectoryURL.appending(path: "stamp")
        let file = out.appending(path: "BuildCommit.swift").path(percentEncoded: false)
        let root = context.package.directoryURL.path(percentEncoded: false)
        let script = """
            set -u
            mkdir -p "$(dirname "$2")"
            c=$(git -C "$1" rev-parse --short=12 HEAD 2>/dev/null) || c=unknown
            if [ "$c" != unknown ] && [ -n "$(git -C "$1" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
                c="$c-dirty"
            fi
            case "$c" in *[!A-Za-z0-9._-]*|'') c=unknown ;; esac
            new="// Written by the VersionStamp build plugin; do not edit.
            let buildCommit = \\"$c\\"
            "
            [ -f "$2" ] && [ "$(cat "$2"; echo x)" = "$(printf '%s' "$new"; echo x)" ] && exit 0
            printf '%s' "$new" > "$2.tmp" && mv "$2.tmp" "$2"
            """
        return [.prebuildCommand(
            displayName: "Stamping powercut with its git commit",
            executable: URL(filePath: "/bin/sh"),
            arguments: ["-c", script, "stamp", root, file],
            outputFilesDirectory: out)]
    }
}
