"""Issue 26's bar, end to end: a full ResNet-18 state dict written by `torch.save` (random weights, non-trivial
BatchNorm statistics), in both of torch's file formats, is read in a process where `import torch` fails, loaded
into `st.models.get("resnet18", 1000, 3)`, and its 224×224 output equals torch's within 1e-4 of the output
scale."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.test_resnet import torch_output, torch_resnet

NO_TORCH_LOAD = textwrap.dedent("""
    import sys
    sys.modules["torch"] = None  # `import torch` raises ImportError from here on
    import numpy as np
    import striate as st

    path, images, out = sys.argv[1:]
    state = st.models.read_state_dict(path)
    model = st.models.get("resnet18", 1000, 3, rng=np.random.default_rng(0)).eval()
    report = st.models.load_torch_weights(model, state)
    assert report.ok and len(report.loaded) == len(state), str(report)
    with st.no_grad():
        np.save(out, model(np.load(images)))
    assert sys.modules["torch"] is None
""")


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_resnet18_from_torch_save_without_torch(legacy, tmp_path, torch):
    torch.manual_seed(0)
    net = torch_resnet(torch, "resnet18", size=(224, 224))
    path = tmp_path / "resnet18.pth"
    torch.save(net.state_dict(), path, _use_new_zipfile_serialization=not legacy)
    x = np.random.default_rng(1).standard_normal((2, 224, 224, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    subprocess.run([sys.executable, "-c", NO_TORCH_LOAD, str(path), str(tmp_path / "x.npy"),
                    str(tmp_path / "y.npy")], check=True, cwd=tmp_path)
    ref = torch_output(torch, net, x)
    assert np.abs(ref[0] - ref[1]).max() > 0.05 * np.abs(ref).max()  # the output depends on the input
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
