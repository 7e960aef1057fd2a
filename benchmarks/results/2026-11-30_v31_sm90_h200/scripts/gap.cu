// Session 26 probe: the cost of a small memset before a persistent kernel in a CUDA graph,
// against a zero kernel + a PDL-launched main kernel, and the main kernel alone.
#include <cuda_runtime.h>
#include <cstdio>
#include <vector>
#include <algorithm>

__global__ void zero_kernel(int* buf, int n) {
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
  for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = 0;
}

// Spins ~`ns` nanoseconds; with `pdl`, waits on the prior grid before reading buf.
__global__ void main_kernel(int* buf, long long ns, int pdl, int* sink) {
  extern __shared__ int smem[];
  smem[threadIdx.x] = threadIdx.x;
  if (pdl) asm volatile("griddepcontrol.wait;" ::: "memory");
  int v = 0;
  if (threadIdx.x == 0) v = atomicAdd(buf, 1);
  long long t0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  long long t = t0;
  while (t - t0 < ns) asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  __syncthreads();
  if (threadIdx.x == 0 && v == -12345) sink[0] = smem[5];
}

int main() {
  int* buf; int* sink;
  cudaMalloc(&buf, 4096); cudaMalloc(&sink, 64);
  const int smem = 200 * 1024;
  cudaFuncSetAttribute(main_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  cudaStream_t s; cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  const int calls = 20;
  for (long long ns : {20000LL, 130000LL}) {
    for (int mode = 0; mode < 4; ++mode) {
      // 0: main alone; 1: memset + main; 2: zero kernel + main (PDL); 3: zero kernel + main (no PDL)
      cudaGraph_t g; cudaGraphExec_t ge;
      cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
      for (int c = 0; c < calls; ++c) {
        if (mode == 1) cudaMemsetAsync(buf, 0, 560, s);
        if (mode >= 2) zero_kernel<<<1, 128, 0, s>>>(buf, 140);
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3(132); cfg.blockDim = dim3(384); cfg.dynamicSmemBytes = smem; cfg.stream = s;
        cudaLaunchAttribute attr;
        attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr.val.programmaticStreamSerializationAllowed = 1;
        if (mode == 2) { cfg.attrs = &attr; cfg.numAttrs = 1; }
        cudaLaunchKernelEx(&cfg, main_kernel, buf, ns, mode == 2 ? 1 : 0, sink);
      }
      cudaStreamEndCapture(s, &g);
      if (cudaGraphInstantiate(&ge, g, 0) != cudaSuccess) { printf("inst fail\n"); return 1; }
      cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
      std::vector<float> ts;
      for (int r = 0; r < 40; ++r) {
        cudaEventRecord(a, s); cudaGraphLaunch(ge, s); cudaEventRecord(b, s);
        cudaEventSynchronize(b);
        float ms; cudaEventElapsedTime(&ms, a, b); ts.push_back(ms * 1000.f / calls);
      }
      std::sort(ts.begin(), ts.end());
      const char* names[] = {"main alone", "memset + main", "zero kernel + main (PDL)", "zero kernel + main (plain)"};
      printf("spin %lld us  %-28s %8.2f us per call (overhead %.2f)\n", ns / 1000, names[mode], ts[20], ts[20] - ns / 1000.0);
      cudaGraphExecDestroy(ge); cudaGraphDestroy(g);
    }
  }
  printf("err: %s\n", cudaGetErrorString(cudaGetLastError()));
  return 0;
}
