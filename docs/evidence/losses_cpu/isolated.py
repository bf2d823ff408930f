"""Isolated costs named in docs/benchmarks.md, medians of 30 paired runs, one thread.

Run: PYTHONPATH=$PWD OMP_NUM_THREADS=1 python docs/evidence/losses_cpu/isolated.py > docs/evidence/losses_cpu/isolated.txt
"""

import statistics
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)


def paired(fns, make, n=30):
    t = {k: [] for k in fns}
    for i in range(n + 3):
        for k, f in fns.items() if i % 2 else reversed(list(fns.items())):
            x = make()
            s = time.perf_counter()
            f(x).backward()
            e = time.perf_counter() - s
            if i >= 3:
                t[k].append(e)
    return {k: round(statistics.median(v) * 1e3, 2) for k, v in t.items()}


a = torch.rand(1048576, generator=g) * 10
b = torch.rand(1048576, generator=g) * 10
print(
    "msle 1M:",
    paired(
        {
            "log1p": lambda x: (torch.log1p(x) - torch.log1p(b)).square().mean(),
            "log(1+x)": lambda x: (torch.log(1 + x) - torch.log(1 + b)).square().mean(),
        },
        lambda: a.detach().requires_grad_(),
    ),
)
z = torch.randn(4096, 1000, generator=g) * 2
y = torch.randint(0, 1000, (4096,), generator=g)


def focal(clamp):
    def f(x):
        log_pt = F.log_softmax(x, 1).gather(1, y[:, None]).squeeze(1)
        one = -torch.expm1(log_pt)
        one = one.clamp_min(1e-30) if clamp else one
        return (-log_pt * one**2).mean()

    return f


print("softmax focal 4096x1000:", paired({"clamp": focal(True), "no clamp": focal(False)}, lambda: z.detach().requires_grad_()))
x = torch.randn(4096, 1000, generator=g).log_softmax(1)
p = torch.randn(4096, 1000, generator=g).softmax(1)
print(
    "kl_div 4096x1000:",
    paired(
        {
            "F.kl_div": lambda v: F.kl_div(v, p, reduction="batchmean"),
            "masked_fill": lambda v: F.kl_div(v.masked_fill(p == 0, 0.0), p, reduction="batchmean"),
            "clamp_min": lambda v: F.kl_div(v.clamp_min(-1e30), p, reduction="batchmean"),
        },
        lambda: x.detach().requires_grad_(),
    ),
)
