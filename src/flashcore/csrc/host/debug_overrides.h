// Process-wide switches of the forward heuristic for A/B runs and tests
// (flashcore/_debug.py); off by default, so the heuristic is as measured.
#pragma once

namespace flashcore {

// On: under a causal mask or a window the heuristic picks the Hopper family's
// persistent twin (sm90_d64_p, sm90_d64_w3_p, sm90_d128_p) also where it
// would pick the one-block-per-tile config (past its query-tile bounds), so
// that the masked calls of a whole run take the persistent kernels' cross-head
// longest-first order (sm90/tile_order.h). For A/B runs (benchmarks/NOTES.md
// v15, v17).
void set_sm90_persistent_masked(bool on);
bool sm90_persistent_masked();

}  // namespace flashcore
