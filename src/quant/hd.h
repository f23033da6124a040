// WO_HD marks small inline helpers that CUDA kernels share with the CPU reference.
#pragma once

#ifdef __CUDACC__
#define WO_HD __host__ __device__
#else
#define WO_HD
#endif
