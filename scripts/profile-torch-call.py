"""Where one hps_torch.LookupLayer call on CUDA keys spends its host time, on
the GPU machine: the layer, the C call `hps_lookup_device` alone, the
layer's torch calls, and F.embedding on the same keys; each 2,000 times in a
host loop after 100, then one synchronize (µs per call). The model: the
seed's first table (10,000 × 128, static table) as bench-torch-gpu.py writes it.

    LD_LIBRARY_PATH=DIR HPS_C_LIB=DIR/libhps_c.so python3 scripts/profile-torch-call.py   (from the checkout)
"""
import os, sys, time, tempfile, json
import numpy as np, torch
sys.path.insert(0, "python"); sys.path.insert(0, "scripts")
import importlib.util
spec = importlib.util.spec_from_file_location("b", "scripts/bench-torch-gpu.py"); b = importlib.util.module_from_spec(spec); spec.loader.exec_module(b)
import hps_torch
from swift_hps import library
d = tempfile.mkdtemp(); b.write_model(d, "static", 0)
os.environ["HPS_DEVICE"] = "gpu"
layer = hps_torch.LookupLayer(os.path.join(d, "gpu.json"), "seed", 0, 128)
k = torch.randint(0, 10000, (256, 26), device="cuda")
h = layer._handle
out = torch.empty((256, 26, 128), device="cuda")
s = torch.cuda.current_stream().cuda_stream
def t(name, f, n=2000):
    for _ in range(100): f()
    torch.cuda.synchronize(); a = time.perf_counter()
    for _ in range(n): f()
    torch.cuda.synchronize(); print(f"{name}: {(time.perf_counter()-a)/n*1e6:.1f} us per call (host loop, then sync)")
with torch.no_grad():
    t("layer(keys)", lambda: layer(k))
    t("torch.empty", lambda: torch.empty((256, 26, 128), device="cuda"))
    t("current_stream", lambda: torch.cuda.current_stream(k.device).cuda_stream)
    t("handle.lookup_device", lambda: h.lookup_device("seed", [(0, k.data_ptr(), k.numel())], 1, out.data_ptr(), out.numel(), 0, s))
    t("api_version", lambda: h._lib.hps_api_version())
    w = torch.randn(10000, 128, device="cuda")
    t("F.embedding", lambda: torch.nn.functional.embedding(k, w))
