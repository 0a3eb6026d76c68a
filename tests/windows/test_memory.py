"""The plans' memory estimate is not below what a forward really takes (peak RSS growth, fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys

from medseg.config import NetworkConfig
from medseg.windows.memory import working_bytes

CHILD = """
import json, sys, torch
from medseg.config import NetworkConfig
from medseg.networks import build_network
torch.set_num_threads(1)
config = NetworkConfig(**json.loads(sys.argv[1]))
shape = json.loads(sys.argv[2])
network = build_network(config).eval()
x = torch.randn(1, config.in_channels, *[s + 2 * int(sys.argv[3]) for s in shape])
def status_bytes(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
# Reset the peak (VmHWM; Linux clear_refs "5"), so the import peak does not hide or inflate the forward's.
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")
before = status_bytes("VmRSS")
with torch.inference_mode():
    network(x)
print(status_bytes("VmHWM") - before)
"""


def _measured(config: dict, shape: list[int], margin: int) -> int:
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(config), json.dumps(shape), str(margin)],
                          capture_output=True, text=True, check=True, timeout=600)
    return int(done.stdout.strip().splitlines()[-1])


def test_unet_estimate_covers_the_measured_peak() -> None:
    config = {"name": "unet", "out_channels": 4, "channels": [16, 32, 64, 128], "strides": [2, 2, 2],
              "num_res_units": 1, "norm": "batch"}
    shape = [64, 64, 80]
    measured = _measured(config, shape, 0)
    estimate = working_bytes(NetworkConfig(**{k: tuple(v) if isinstance(v, list) else v
                                              for k, v in config.items()}), shape)
    assert measured > 10 * 2**20  # the forward really allocated (the measurement is not empty)
    assert estimate >= measured, (estimate, measured)
    assert estimate < 6 * measured  # and not absurdly high (windows would be needlessly small)


def test_deepmedic_estimate_covers_the_measured_peak() -> None:
    config = {"name": "deepmedic", "out_channels": 4}
    shape = [27, 27, 27]
    measured = _measured(config, shape, 24)
    estimate = working_bytes(NetworkConfig(name="deepmedic", out_channels=4), shape, 24)
    assert measured > 10 * 2**20
    assert estimate >= measured, (estimate, measured)
