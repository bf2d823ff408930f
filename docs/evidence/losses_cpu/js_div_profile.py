"""Where js_div's time goes at 4096x1000, one thread: torch.profiler over 5 forward + backward calls of ours and of
the reference (F.kl_div twice), then the single ops alone (medians of 12 alternating runs, no gradient).

Run (ours at the checked-out commit): PYTHONPATH=$PWD OMP_NUM_THREADS=1 python docs/evidence/losses_cpu/js_div_profile.py
"""

import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

import losses
from bench.references.distribution import torch_js

torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
x = torch.randn(4096, 1000, generator=g).log_softmax(1)
p = torch.randn(4096, 1000, generator=g).softmax(1)
ours = losses.build("js_div")
ours.value_check_calls = 0  # the steady state, as bench.losses times it
for name, f in (("ours", lambda a: ours(a, p)), ("reference", lambda a: torch_js(a, p, "batchmean"))):
    for _ in range(2):
        f(x.detach().requires_grad_()).backward()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            f(x.detach().requires_grad_()).backward()
    print(f"{name}, 5 calls of forward + backward")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))

q = x.exp()
m = (p + q) / 2
ops = {
    "exp": lambda: x.exp(),
    "log": lambda: m.log(),
    "mul": lambda: p * m,
    "xlogy": lambda: torch.xlogy(p, m),
    "clamp_min": lambda: p.clamp_min(1e-38),
    "gt": lambda: p > 0,
    "where": lambda: torch.where(p > 0, m, 1.0),
}
times = {k: [] for k in ops}
for i in range(14):
    for k, f in ops.items() if i % 2 else reversed(list(ops.items())):
        start = time.perf_counter()
        f()
        if i >= 2:
            times[k].append(time.perf_counter() - start)
print("single ops at 4096x1000, median ms:", {k: round(statistics.median(v) * 1e3, 2) for k, v in times.items()})
