"""CuPy kernels: each reads its input once and writes its output once. Same verbs as torch_ref.

Importing this module imports CuPy; vtok.kernels does so only for CUDA tensors.
"""

import cupy as cp
import torch

from vtok.format.layout import PATCH

__all__ = ["fsq_indices", "lfq_indices", "rlt_update"]


# One thread per token position: read the D channels, bound, round, and accumulate the index.
_FSQ = r"""
extern "C" __global__ void fsq_indices(const float* z, const int* levels, int D, int B, int HW,
                                       unsigned short* out16, int* out32) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= (long long)B * HW) return;
    long long b = i / HW, p = i % HW;
    const float* zp = z + b * D * (long long)HW + p;
    long long index = 0, basis = 1;
    for (int d = 0; d < D; ++d) {
        int L = levels[d];
        float half = (L - 1) * (1.0f + 1e-3f) / 2.0f;
        float offset = (L % 2 == 0) ? 0.5f : 0.0f;
        float shift = atanhf(offset / half);
        float bounded = tanhf(zp[d * (long long)HW] + shift) * half - offset;
        int code = (int)rintf(bounded) + L / 2;
        index += code * basis;
        basis *= L;
    }
    if (out16) out16[i] = (unsigned short)index; else out32[i] = (int)index;
}
"""

_LFQ = r"""
extern "C" __global__ void lfq_indices(const float* z, int D, int B, int HW, unsigned short* out16, int* out32) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= (long long)B * HW) return;
    long long b = i / HW, p = i % HW;
    const float* zp = z + b * D * (long long)HW + p;
    unsigned int index = 0;
    for (int d = 0; d < D; ++d) index |= (zp[d * (long long)HW] > 0.0f ? 1u : 0u) << d;
    if (out16) out16[i] = (unsigned short)index; else out32[i] = (int)index;
}
"""

# One thread block of 256 threads per 16x16 patch: each thread owns one pixel column through the
# 3 x F planes, the block reduces the sum, thread 0 decides, and moved patches copy block into start.
_RLT = r"""
extern "C" __global__ void rlt_update(const float* block, float* start, int planes, int H, int W,
                                      int PH, int PW, float threshold, bool* is_static) {
    __shared__ float partial[256];
    __shared__ bool moved;
    int py = blockIdx.x / PW, px = blockIdx.x % PW;
    int y = py * 16 + threadIdx.x / 16, x = px * 16 + threadIdx.x % 16;
    bool inside = y < H && x < W;
    float sum = 0.0f;
    float mine[12];  // this thread's pixels for F <= 4 (3 x 4 planes), kept to copy without re-reading
    for (int c = 0; c < planes; ++c) {
        float v = 0.0f;
        if (inside) {
            long long k = (long long)c * H * W + (long long)y * W + x;
            v = block[k];
            sum += fabsf(v - start[k]);
        }
        if (c < 12) mine[c] = v;
    }
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        int rows = min(16, H - py * 16), cols = min(16, W - px * 16);
        float mad = partial[0] / (float)(planes * rows * cols) / 2.0f;
        moved = !(mad < threshold);
        is_static[blockIdx.x] = !moved;
    }
    __syncthreads();
    if (moved && inside) {
        for (int c = 0; c < planes; ++c) {
            long long k = (long long)c * H * W + (long long)y * W + x;
            start[k] = c < 12 ? mine[c] : block[k];
        }
    }
}
"""

_kernels: dict[str, cp.RawKernel] = {}


def _kernel(name: str, source: str) -> cp.RawKernel:
    if name not in _kernels:
        _kernels[name] = cp.RawKernel(source, name)
    return _kernels[name]


def _cupy(t: torch.Tensor) -> cp.ndarray:
    return cp.from_dlpack(t.detach().contiguous())


def fsq_indices(z: torch.Tensor, levels: tuple[int, ...]) -> torch.Tensor:
    b, d, h, w = z.shape
    zc = _cupy(z.float())
    lv = cp.asarray(levels, dtype=cp.int32)
    wide = int(cp.prod(lv.astype(cp.int64))) > 1 << 16
    # int16 storage: DLPack carries it everywhere; the kernel writes unsigned bits, viewed as uint16 below
    out = torch.empty((b, h, w), dtype=torch.int32 if wide else torch.int16, device=z.device)
    oc = _cupy(out)
    n = b * h * w
    null = cp.uint64(0)  # the unused output pointer
    args = (zc, lv, cp.int32(d), cp.int32(b), cp.int32(h * w), null if wide else oc, oc if wide else null)
    _kernel("fsq_indices", _FSQ)(((n + 255) // 256,), (256,), args)
    return out if wide else out.view(torch.uint16)


def lfq_indices(z: torch.Tensor) -> torch.Tensor:
    b, d, h, w = z.shape
    wide = d > 16
    out = torch.empty((b, h, w), dtype=torch.int32 if wide else torch.int16, device=z.device)  # as in fsq_indices
    oc, null, n = _cupy(out), cp.uint64(0), b * h * w
    args = (_cupy(z.float()), cp.int32(d), cp.int32(b), cp.int32(h * w), null if wide else oc, oc if wide else null)
    _kernel("lfq_indices", _LFQ)(((n + 255) // 256,), (256,), args)
    return out if wide else out.view(torch.uint16)


def rlt_update(block: torch.Tensor, start: torch.Tensor, threshold: float) -> torch.Tensor:
    c, f, h, w = block.shape
    ph, pw = -(-h // PATCH), -(-w // PATCH)
    if not start.is_contiguous() or start.dtype != torch.float32:
        raise ValueError("start must be a contiguous float32 tensor (it is updated in place)")
    is_static = torch.empty((ph, pw), dtype=torch.bool, device=block.device)
    _kernel("rlt_update", _RLT)(
        (ph * pw,),
        (256,),
        (
            _cupy(block.float()),
            cp.from_dlpack(start),
            cp.int32(c * f),
            cp.int32(h),
            cp.int32(w),
            cp.int32(ph),
            cp.int32(pw),
            cp.float32(threshold),
            _cupy(is_static),
        ),
    )
    return is_static
