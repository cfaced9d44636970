import pytest
import torch

import spikelab as sl
from spikelab.errors import ConfigError
from spikelab.spec import build, spec_of


def test_spec_round_trip_rebuilds_same_architecture():
    net = sl.Sequential(sl.Flatten(), sl.Linear(8, 6), sl.LIF(beta=0.7, reset="subtract", learn_beta="neuron", features=6),
                        sl.Dropout(0.2), sl.Linear(6, 2), sl.LeakyIntegrator(beta=0.95))
    spec = spec_of(net)
    rebuilt = build(spec)
    assert spec_of(rebuilt) == spec
    rebuilt.load_state_dict(net.state_dict())
    net.eval(), rebuilt.eval()
    x = torch.rand(5, 3, 2, 4)
    torch.testing.assert_close(net(x), rebuilt(x))


def test_spec_is_plain_data():
    spec = spec_of(sl.models.build_model("conv", (2, 17, 17), 10, channels=(4, 8)))

    def plain(value):
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, (bool, int, float, str))

    assert plain(spec)


def test_custom_module_cannot_be_described():
    class Mine(torch.nn.Module):
        pass

    with pytest.raises(ConfigError, match="model=YourModel"):
        spec_of(Mine())
