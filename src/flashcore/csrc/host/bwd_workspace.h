// How api/ops.cpp lays the backward's fp32 workspaces (host/run.h
// bwd_workspace) out in one allocation: dq_accum, then dpsum, then lse_log2,
// then (a split GQA group only) dk_partial and dv_partial, each starting on a
// 256-byte boundary (float4 and TMA accesses stay aligned). One allocation
// per backward call instead of three or five. c_api.cpp exposes the
// total, so the GPU tests can poison exactly that block.
#pragma once

#include <cstdint>

#include "run.h"

namespace flashcore {

struct BwdWorkspaceLayout {
  int64_t dpsum_offset;       // fp32 elements from the start
  int64_t lse_log2_offset;    // fp32 elements from the start
  int64_t dk_partial_offset;  // fp32 elements from the start (unused when partial_elems is 0)
  int64_t dv_partial_offset;  // fp32 elements from the start (unused when partial_elems is 0)
  int64_t total_elems;        // dq_accum at offset 0
};

inline BwdWorkspaceLayout bwd_workspace_layout(const BwdWorkspace& ws) {
  constexpr int64_t kAlign = 64;  // fp32 elements: 256 bytes
  auto up = [](int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; };
  BwdWorkspaceLayout l{};
  l.dpsum_offset = up(ws.dq_accum_elems);
  l.lse_log2_offset = l.dpsum_offset + up(ws.row_elems);
  l.dk_partial_offset = l.lse_log2_offset + up(ws.row_elems);
  l.dv_partial_offset = l.dk_partial_offset + up(ws.partial_elems);
  l.total_elems = l.dv_partial_offset + up(ws.partial_elems);
  return l;
}

}  // namespace flashcore
