"""The Triton kernels (k2nb/engine/ops/triton_gemm.py, triton_moe.py) against the dequantized reference.

On a CPU machine the kernels run in Triton's interpreter: ``TRITON_INTERPRET=1`` has to be set before a
kernel is defined and would change every Triton module imported after it, so the cases run in one
subprocess of this file (``python tests/test_triton_moe.py CASE ...``) and the rest of the suite's
process never sees the variable. The interpreter has no bfloat16, so on the CPU the cases run in
float16 and float32 on small shapes (H 64, I 32, E 8, top-2). With ``K2NB_TEST_DEVICE=cuda``
(bench/gpu_check.sh) the same cases are compiled for the GPU, bfloat16 is added, and larger shapes,
the torch alignment path and a CUDA-graph capture (which fails on any host sync) run too.

The reference is the engine's dense torch MoE (`ops.dense.moe_experts`) in float32 on weights this file
dequantizes itself from the compressed-tensors layout (checked against the compressed_tensors package
where it is installed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from k2nb.engine.ops.fp8 import Fp8BlockWeight
from k2nb.engine.ops.int4 import Int4Weight

DEVICE = os.environ.get("K2NB_TEST_DEVICE", "cpu")
ON_GPU = DEVICE == "cuda"
CASES: dict[str, Callable[[], str]] = {}  # name → check (raises on failure, returns a detail line)


def case(name: str) -> Callable[[Callable[[], str]], Callable[[], str]]:
    """Decorator: `fn` is the check named `name`."""
    def add(fn: Callable[[], str]) -> Callable[[], str]:
        CASES[name] = fn
        return fn

    return add


# ---------------------------------------------------------------------------------------------------
# references: the compressed-tensors INT4 layout and block FP8, written independently of the kernels


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """q int in [-8, 7], ``[..., N, K]`` → int32 ``[..., N, K/8]``: column k in word k // 8 at bits
    4·(k % 8), least significant first, stored as q + 8 (compressed-tensors pack_to_int32)."""
    u = (q.to(torch.int64) + 8).reshape(*q.shape[:-1], q.shape[-1] // 8, 8)
    words = sum(u[..., j] << (4 * j) for j in range(8))
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)  # the same 32 bits, signed


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """int32 ``[..., N, K/8]`` → q int8 ``[..., N, K]``."""
    nib = torch.stack([(packed >> (4 * j)) & 0xF for j in range(8)], dim=-1)  # [..., N, K/8, 8]
    return (nib.reshape(*packed.shape[:-1], -1) - 8).to(torch.int8)


def int4_weight(shape: tuple[int, ...], group: int, dtype: torch.dtype,
                gen: torch.Generator) -> tuple[Int4Weight, torch.Tensor]:
    """A random INT4 weight (every nibble value, including −8; scales in `dtype`) and its float32
    dequantization."""
    q = torch.randint(-8, 8, shape, generator=gen, dtype=torch.int32)
    scale = (torch.rand(*shape[:-1], shape[-1] // group, generator=gen) * 0.02 + 0.005).to(dtype)
    packed = pack_int4(q)
    assert torch.equal(unpack_int4(packed), q.to(torch.int8))
    return Int4Weight(packed, scale, group, dtype), q.float() * scale.float().repeat_interleave(group, dim=-1)


def fp8_weight(shape: tuple[int, ...], block: int, dtype: torch.dtype,
               gen: torch.Generator) -> tuple[Fp8BlockWeight, torch.Tensor]:
    """A random block-FP8 weight ``[..., N, K]`` (scale_inv ``[..., ⌈N/B⌉, ⌈K/B⌉]``) and its
    float32 dequantization."""
    w = (torch.randn(shape, generator=gen) * 2).to(torch.float8_e4m3fn)
    nb, kb = -(-shape[-2] // block), -(-shape[-1] // block)
    scale_inv = torch.rand(*shape[:-2], nb, kb, generator=gen) * 0.02 + 0.005
    full = scale_inv.repeat_interleave(block, -2)[..., : shape[-2], :].repeat_interleave(block, -1)
    return Fp8BlockWeight(w, scale_inv, (block, block), dtype), w.float() * full[..., : shape[-1]]


def fp8_w13_from_projections(e: int, inter: int, h: int, block: int, dtype: torch.dtype,
                             gen: torch.Generator) -> tuple[Fp8BlockWeight, torch.Tensor]:
    """w13 stacked from each expert's gate and up linears, as the loader stacks a checkpoint's
    (`Fp8BlockWeight.stack`; gate rows that are not whole blocks give one scale row per weight row)."""
    parts, ref = [], []
    for _ in range(e):
        gate, dg = fp8_weight((inter, h), block, dtype, gen)
        up, du = fp8_weight((inter, h), block, dtype, gen)
        parts.append([gate, up])
        ref.append(torch.cat((dg, du)))
    return Fp8BlockWeight.stack(parts), torch.stack(ref)


def routing(t: int, e: int, k: int, kind: str, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """topk (weights float32, ids int64) ``[t, k]``: "uniform" (distinct experts per token) or "ragged"
    (most copies on experts 0–1, the upper half of the experts never chosen)."""
    if kind == "uniform":
        ids = torch.stack([torch.randperm(e, generator=gen)[:k] for _ in range(t)])
    else:
        p = torch.tensor([8.0, 4.0] + [1.0] * (e // 2 - 2) + [0.0] * (e - e // 2))
        ids = torch.stack([torch.multinomial(p, k, generator=gen) for _ in range(t)])
    return torch.rand(t, k, generator=gen) + 0.1, ids


def close(y: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> str:
    tol = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 4e-2}[dtype]
    err = (y.float().cpu() - ref.float().cpu()).abs().max().item()
    scale = ref.abs().max().item()
    assert y.dtype == dtype and y.shape == ref.shape, f"got {y.dtype} {tuple(y.shape)}"
    assert err <= tol * scale, f"max error {err:.3g} > {tol} × max |ref| {scale:.3g}"
    return f"max error {err:.2g} (max |ref| {scale:.2g})"


def to_device(w: Any) -> Any:
    return w.to(DEVICE)  # a tensor, or a PackedWeight (an nn.Module: its packed tensors move)


# ---------------------------------------------------------------------------------------------------
# cases


DTYPES = (torch.float16, torch.float32) + ((torch.bfloat16,) if ON_GPU else ())
SHAPE = dict(h=64, inter=32, e=8, k=2)


def check_moe(fmt: str, dtype: torch.dtype, t: int, kind: str, config: Any = None, *, h: int = 64,
              inter: int = 32, e: int = 8, k: int = 2, group: int = 32, block: int = 128,
              from_projections: bool = False, seed: int = 0) -> str:
    from k2nb.engine.ops import dense, triton_moe

    gen = torch.Generator().manual_seed(seed)
    if fmt == "int4":
        w13, d13 = int4_weight((e, 2 * inter, h), group, dtype, gen)
        w2, d2 = int4_weight((e, h, inter), group, dtype, gen)
    elif fmt == "fp8":
        if from_projections:
            w13, d13 = fp8_w13_from_projections(e, inter, h, block, dtype, gen)
        else:
            w13, d13 = fp8_weight((e, 2 * inter, h), block, dtype, gen)
        w2, d2 = fp8_weight((e, h, inter), block, dtype, gen)
    else:
        w13 = (torch.randn(e, 2 * inter, h, generator=gen) * 0.1).to(dtype)
        w2 = (torch.randn(e, h, inter, generator=gen) * 0.1).to(dtype)
        d13, d2 = w13.float(), w2.float()
    x = torch.randn(t, h, generator=gen).to(dtype)
    weights, ids = routing(t, e, k, kind, gen)
    ref = dense.moe_experts(x.float(), weights, ids, d13, d2)
    y = triton_moe.fused_moe(x.to(DEVICE), weights.to(DEVICE), ids.to(DEVICE), to_device(w13), to_device(w2),
                             fmt, config)
    return close(y, ref, dtype)


def _moe_cases() -> None:
    for fmt in ("int4", "fp8", "dense"):
        for dtype in DTYPES:
            dn = str(dtype).removeprefix("torch.")
            for t in (1, 5, 17):  # decode (one program per copy), M = 10 (still per copy), M = 34 (sorted)
                kind = "uniform" if t != 17 else "ragged"
                CASES[f"moe_{fmt}_{dn}_T{t}_{kind}"] = (
                    lambda f=fmt, d=dtype, t=t, kd=kind: check_moe(f, d, t, kd))


_moe_cases()


def forced(kind: str, bm: int, bn13: int = 32, bn2: int = 16, bk: int = 64) -> Any:
    from k2nb.engine.ops.triton_gemm import GemmConfig
    from k2nb.engine.ops.triton_moe import MoeConfig

    return MoeConfig(bm, GemmConfig(kind, bm, bn13, bk), GemmConfig(kind, bm, bn2, bk))


@case("moe_int4_gemv_sorted_ragged")
def _() -> str:  # blocks of 4 copies of one expert through the broadcast-reduce kernel
    return check_moe("int4", torch.float16, 17, "ragged", forced("gemv", 4))


@case("moe_int4_dot_bm32_ragged")
def _() -> str:  # a block taller than any expert's load: padding rows, experts with no token
    return check_moe("int4", torch.float32, 9, "ragged", forced("dot", 32, 16, 32, 32))


@case("moe_int4_per_copy_T17")
def _() -> str:  # the decode kernel on many tokens (repeated experts across tokens)
    return check_moe("int4", torch.float16, 17, "ragged", forced("gemv", 1))


@case("moe_int4_group64")
def _() -> str:  # another group size
    return check_moe("int4", torch.float16, 5, "uniform", forced("dot", 16), inter=64, group=64)


@case("moe_fp8_block32")
def _() -> str:  # several scale blocks per matrix, and a w13 block straddling gate and up rows
    return check_moe("fp8", torch.float16, 17, "ragged", h=64, inter=48, block=32)


@case("moe_fp8_stacked_from_projections")
def _() -> str:  # I = 48 gate rows are not whole 32-row blocks: the stack keeps a scale per row
    return check_moe("fp8", torch.float16, 5, "uniform", forced("gemv", 4), h=64, inter=48, block=32,
                     from_projections=True)


@case("moe_dense_top1_one_expert")
def _() -> str:  # every token on one expert: one long run of blocks, all others empty
    from k2nb.engine.ops import dense, triton_moe

    gen = torch.Generator().manual_seed(3)
    w13, w2 = torch.randn(8, 64, 64, generator=gen) * 0.1, torch.randn(8, 64, 32, generator=gen) * 0.1
    x = torch.randn(40, 64, generator=gen)
    ids, weights = torch.full((40, 1), 5), torch.rand(40, 1, generator=gen)
    ref = dense.moe_experts(x, weights, ids, w13, w2)
    y = triton_moe.fused_moe(x.to(DEVICE), weights.to(DEVICE), ids.to(DEVICE), w13.to(DEVICE), w2.to(DEVICE),
                             "dense", forced("dot", 16))
    return close(y, ref, torch.float32)


def check_align(m: int, e: int, bm: int, use_kernel: bool, seed: int) -> str:
    from k2nb.engine.ops.triton_moe import max_blocks, moe_align

    gen = torch.Generator().manual_seed(seed)
    p = torch.rand(e, generator=gen) ** 3
    p[torch.randperm(e, generator=gen)[: e // 3]] = 0  # a third of the experts receive nothing
    ids = torch.multinomial(p, m, replacement=True, generator=gen).to(torch.int32)
    rows = moe_align(ids.to(DEVICE), e, bm, use_kernel=use_kernel)
    n_blocks = max_blocks(m, e, bm)
    bexp, brows = rows.block_expert.cpu().long(), rows.block_rows.cpu().long()
    srt = rows.sorted_ids.cpu().long().view(n_blocks, bm)
    assert rows.blocks == n_blocks and bexp.shape == (n_blocks,)
    counts = torch.bincount(ids.long(), minlength=e)
    used = bexp >= 0
    assert torch.equal(used, torch.arange(n_blocks) < used.sum()), "blocks past the end must come last"
    assert torch.equal(brows[~used], torch.zeros_like(brows[~used]))
    assert bool((bexp[used][1:] >= bexp[used][:-1]).all()), "blocks are in expert order"
    seen: list[int] = []
    for b in range(int(used.sum())):
        assert 1 <= brows[b] <= bm
        copies = srt[b, : brows[b]].tolist()
        assert all(ids[c] == bexp[b] for c in copies), f"block {b} holds copies of another expert"
        seen += copies
    assert sorted(seen) == list(range(m)), "every copy exactly once"
    order = torch.tensor(seen)
    assert torch.equal(order, ids.long().argsort(stable=True)), "copy order within an expert"
    blocks_per = torch.bincount(bexp[used], minlength=e)
    assert torch.equal(blocks_per, (counts + bm - 1) // bm)
    return f"{int(used.sum())} of {n_blocks} blocks used, {int((counts == 0).sum())} experts empty"


for _m, _e, _bm, _seed in ((2, 8, 16, 0), (10, 8, 4, 1), (34, 8, 16, 2), (300, 40, 16, 3), (513, 384, 16, 4),
                           (64, 8, 1, 5)):
    for _kernel in (True, False):
        CASES[f"align_{'kernel' if _kernel else 'torch'}_M{_m}_E{_e}_BM{_bm}"] = (
            lambda m=_m, e=_e, bm=_bm, kernel=_kernel, seed=_seed: check_align(m, e, bm, kernel, seed))


def check_linear(fmt: str, dtype: torch.dtype, lead: tuple[int, ...]) -> str:
    from k2nb.engine.ops import triton_gemm

    gen = torch.Generator().manual_seed(7)
    if fmt == "int4":
        w, d = int4_weight((48, 64), 32, dtype, gen)
    else:
        w, d = fp8_weight((48, 64), 32, dtype, gen)
    bias = torch.randn(48, generator=gen).to(dtype)
    x = torch.randn(*lead, 64, generator=gen).to(dtype)
    ref = torch.nn.functional.linear(x.float(), d, bias.float())
    fn = triton_gemm.linear_int4 if fmt == "int4" else triton_gemm.linear_fp8
    return close(fn(x.to(DEVICE), to_device(w), bias.to(DEVICE)), ref, dtype)


for _fmt in ("int4", "fp8"):
    for _lead in ((1,), (2, 3), (40,)):  # one row (gemv), six rows (gemv, 8-row tile), 40 rows (dot)
        CASES[f"linear_{_fmt}_{'x'.join(map(str, _lead))}"] = (
            lambda f=_fmt, ld=_lead: check_linear(f, torch.float16, ld))


@case("registry_cuda_lookup")
def _() -> str:
    """The first CUDA lookup imports the Triton modules and finds their kernels."""
    from k2nb.engine.ops import registry

    cuda = torch.device("cuda")
    w, _ = int4_weight((4, 16, 32), 32, torch.float16, torch.Generator().manual_seed(0))
    fp8, _ = fp8_weight((4, 16, 32), 128, torch.float16, torch.Generator().manual_seed(0))
    from k2nb.engine.ops import triton_gemm, triton_moe

    assert registry.kernel("moe_experts", w, cuda) is triton_moe.moe_experts_int4
    assert registry.kernel("moe_experts", fp8, cuda) is triton_moe.moe_experts_fp8
    assert registry.kernel("moe_experts", torch.zeros(1), cuda) is triton_moe.moe_experts_dense
    assert registry.kernel("linear", w, cuda) is triton_gemm.linear_int4
    assert registry.kernel("linear", fp8, cuda) is triton_gemm.linear_fp8
    cpu = torch.device("cpu")
    assert registry.kernel("moe_experts", torch.zeros(1), cpu) is not triton_moe.moe_experts_dense
    return "int4 / fp8 / dense MoE and int4 / fp8 linear resolve to Triton on cuda only"


@case("dense_with_autograd_falls_back_to_torch")
def _() -> str:
    from k2nb.engine.ops import dense, triton_moe

    gen = torch.Generator().manual_seed(1)
    w13 = (torch.randn(4, 32, 16, generator=gen) * 0.1).to(DEVICE).requires_grad_()
    w2 = (torch.randn(4, 16, 16, generator=gen) * 0.1).to(DEVICE).requires_grad_()
    x = torch.randn(3, 16, generator=gen).to(DEVICE)
    weights, ids = routing(3, 4, 2, "uniform", gen)
    y = triton_moe.moe_experts_dense(x, weights.to(DEVICE), ids.to(DEVICE), w13, w2)
    y.sum().backward()
    assert w13.grad is not None and w2.grad is not None
    ref = dense.moe_experts(x, weights.to(DEVICE), ids.to(DEVICE), w13, w2)
    close(y.detach(), ref.detach(), torch.float32)
    return "gradients reach w13 and w2"


if ON_GPU:

    @case("cuda_bf16_k2_like_shapes")
    def _() -> str:  # 64 experts top-8, wider matrices, decode to prefill (T = 600: torch alignment)
        out = []
        for t in (1, 7, 64, 600):
            for fmt in ("int4", "fp8", "dense"):
                kind = "ragged" if t % 2 else "uniform"
                detail = check_moe(fmt, torch.bfloat16, t, kind, h=1024, inter=256, e=64, k=8, seed=t)
                out.append(f"{fmt} T{t}: {detail}")
        return "; ".join(out)

    @case("cuda_graph_capture_no_host_sync")
    def _() -> str:
        from k2nb.engine.ops import triton_moe

        gen = torch.Generator().manual_seed(2)
        w13, _ = int4_weight((64, 512, 1024), 32, torch.bfloat16, gen)
        w2, _ = int4_weight((64, 1024, 256), 32, torch.bfloat16, gen)
        w13, w2 = to_device(w13), to_device(w2)
        out = []
        for t in (1, 64):  # the per-copy path and the aligned one
            weights, ids = routing(t, 64, 8, "uniform", gen)
            x = torch.randn(t, 1024, device="cuda", dtype=torch.bfloat16)
            weights, ids = weights.cuda(), ids.cuda()
            eager = triton_moe.fused_moe(x, weights, ids, w13, w2, "int4")  # compiles outside the capture
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                triton_moe.fused_moe(x, weights, ids, w13, w2, "int4")
            finally:
                torch.cuda.set_sync_debug_mode("default")
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                captured = triton_moe.fused_moe(x, weights, ids, w13, w2, "int4")
            graph.replay()
            torch.cuda.synchronize()
            assert torch.equal(captured, eager), "the graph replay differs from the eager call"
            out.append(f"T{t} captured")
        return ", ".join(out)


# ---------------------------------------------------------------------------------------------------
# the pytest side: one subprocess runs every case


pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None,
    reason="triton is not installed (pip install triton): no Triton kernels to test")


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    """Every case's report. On the GPU the cases are split over parallel processes: compiling the
    kernels (single-threaded per kernel) is most of their time there."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if not ON_GPU:
        env["TRITON_INTERPRET"] = "1"
    names = list(CASES)
    workers = min(8, os.cpu_count() or 1) if ON_GPU else 1
    root = Path(__file__).resolve().parents[1]
    procs = [subprocess.Popen([sys.executable, __file__, *names[i::workers]], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=root) for i in range(workers)]
    found, errors = {}, []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        for line in out.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                found[r["case"]] = r
        if proc.returncode:
            errors.append(f"exit {proc.returncode}: {err[-3000:]}")
    if not found:
        pytest.fail("the kernel subprocesses reported nothing:\n" + "\n".join(errors))
    return found


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_case(results: dict[str, dict[str, Any]], name: str) -> None:
    r = results.get(name)
    assert r is not None, f"{name} did not report (the subprocess died before it)"
    assert r["ok"], f"{name}: {r['detail']}"


def test_importing_k2nb_imports_no_triton() -> None:
    code = ("import sys, k2nb, k2nb.engine, k2nb.engine.ops; "
            "assert 'triton' not in sys.modules, sorted(m for m in sys.modules if 'triton' in m)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_reference_packing_matches_compressed_tensors() -> None:
    """This file's INT4 packer is compressed-tensors' pack_to_int32 (nibble order, offset 8)."""
    helpers = pytest.importorskip("compressed_tensors.compressors.pack_quantized.helpers")
    q = torch.randint(-8, 8, (3, 6, 64), generator=torch.Generator().manual_seed(0), dtype=torch.int8)
    assert torch.equal(pack_int4(q), helpers.pack_to_int32(q, 4))
    assert torch.equal(helpers.unpack_from_int32(pack_int4(q), 4, q.shape), q)


def _main(names: list[str]) -> None:
    import time
    import traceback

    for name in names:
        t0 = time.perf_counter()
        try:
            detail, ok = CASES[name](), True
        except Exception as e:  # reported to the parent test, which fails with it
            detail, ok = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}", False
        print(json.dumps(dict(case=name, ok=ok, detail=detail, seconds=round(time.perf_counter() - t0, 2))),
              flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    _main(sys.argv[1:] or list(CASES))
