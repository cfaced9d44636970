"""The README's library example runs as written (with one epoch instead of ten)."""
import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_library_example_runs(tmp_path, nmnist_sample, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no python example"
    code = blocks[0]
    assert "epochs=10" in code and '"../shared/data/nmnist-sample"' in code
    code = code.replace("epochs=10", "epochs=1").replace('"../shared/data/nmnist-sample"', repr(str(nmnist_sample)))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {})
    for name in ("runs/mine/best.pt", "runs/mine/curve.png", "raster.png", "membrane.png"):
        assert (tmp_path / name).is_file() and os.path.getsize(tmp_path / name) > 0, name
