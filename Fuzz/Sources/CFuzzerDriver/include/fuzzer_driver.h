// libFuzzer's driver, called from a fuzz target's own main (SwiftPM gives every
// executable a main of its own, so libFuzzer's cannot be used).
#ifndef POWERCUT_FUZZER_DRIVER_H
#define POWERCUT_FUZZER_DRIVER_H

#include <stddef.h>
#include <stdint.h>

/// Parses libFuzzer's flags from argv and fuzzes (or runs the files named) with
/// `callback` as the target; returns the exit status.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
