"""The README's library and hardware examples run as written (with one epoch instead of ten)."""
import os
import re
from pathlib import Path

import numpy as np
import torch

from parts import need

README = Path(__file__).resolve().parents[1] / "README.md"


def test_library_example_runs(tmp_path, nmnist_sample, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no python example"
    code = blocks[0]
    assert "epochs=10" in code and '"../shared/data/nmnist-sample"' in code
    code = code.replace("epochs=10", "epochs=1").replace('"../shared/data/nmnist-sample"', repr(str(nmnist_sample)))
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    for name in ("runs/mine/best.pt", "runs/mine/curve.png", "raster.png", "membrane.png"):
        assert (tmp_path / name).is_file() and os.path.getsize(tmp_path / name) > 0, name
    # the hardware example continues with the same trained net and sample
    assert len(blocks) >= 2 and "Network.from_model(net" in blocks[1]
    need("pyNN.nest")
    exec(compile(blocks[1], str(README), "exec"), namespace)
    on_nest, on_chip = namespace["on_nest"], namespace["on_chip"]
    assert on_nest["lif1"].shape == on_chip["lif1"].shape == (namespace["frames"].shape[0], 1, 256)
    net = namespace["net"].double()
    with torch.no_grad():
        out = net(torch.as_tensor(namespace["spikes"]).reshape(-1, 1, 2, 17, 17))
    np.testing.assert_allclose(on_nest["readout"], out.numpy(), atol=1e-9)
    # the crossbar example runs on the same net and sample
    (crossbar_example,) = [block for block in blocks if "crossbar.convert(net" in block]
    namespace["net"] = namespace["net"].float()
    exec(compile(crossbar_example, str(README), "exec"), namespace)
    assert namespace["out"].shape == (namespace["frames"].shape[0], 1, 10)
    assert namespace["chip"][1].array.clock.item() > 86400.0


def test_liquid_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (example,) = [block for block in blocks if "run_nalsm(" in block]
    namespace = {}
    exec(compile(example, str(README), "exec"), namespace)
    assert namespace["out"].spikes.shape == (250, 4, 1000)
    assert set(namespace["result"].accuracy) == {"train", "valid", "test"}
    assert namespace["result"].accuracy["test"] > 0.8, namespace["result"].accuracy
