import Foundation
import Testing
import PowercutModel
import PowercutTrace
@testable import PowercutReport
@testable import PowercutTriage
import PowercutSymbolize
import PowercutOutput
@_exported import PowercutTestSupport   // sarifSchemaProblem, for every suite here

/// A symbolizer stand-in: names frames by "module+0xOFFSET".
final class FakeLookup: Symbolizer {
    var places: [String: SourcePlace]

    init(places: [String: SourcePlace]) { self.places = places }

    func locations(of address: UInt64, isReturnAddress: Bool, modules: [Module]) -> [SourcePlace] {
        FrameResolver().frames(of: address, index: 0, modules: modules)[0].moduleOffset.flatMap { places[$0] }.map { [$0] } ?? []
    }
}

/// A recorded-looking trace whose module, stacks and pmem sit at the given bases: the
/// example's shape (3 head bytes, 8 body bytes by ntstore, 2 tail bytes) with the tail's
/// write-back missing. `prefix` adds events before the op (they shift the numbering).
func tailBugTrace(module m: UInt64, pmem p: UInt64, opID: Int = 1, prefix: String = "") -> String {
    func h(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
    return """
        module /usr/lib/libpmem.so.1 \(h(m)) 0x10000
        pmem \(h(p)) 0x10000 name=pool
        stack 1 \(h(m + 0x1a2c)) \(h(m + 0x3000))
        stack 2 \(h(m + 0x1b00)) \(h(m + 0x3000))
        \(prefix)
        op \(opID) begin dst=\(h(p + 0x3d)) len=13 name=memcpy_flushcache
        store \(h(p + 0x3d)) 3 stack=1
        clwb \(h(p + 0x3d))
        ntstore \(h(p + 0x40)) 8 stack=2
        store \(h(p + 0x48)) 2 stack=1
        op \(opID) end
        sfence
        """
}
