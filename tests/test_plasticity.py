"""Local rules as modules: attaching, batch semantics, homeostasis, three-factor STDP, supervised one-shot learning,
and the Trainer's local mode with checkpoints."""
import copy
import math

import pytest
import torch
from torch.utils.data import TensorDataset

import spikelab as sl
from spikelab.errors import ConfigError
from spikelab.functional.plasticity import apply_stdp, stdp_terms
from spikelab.training import Trainer


def _spikes(shape, rate, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < rate).to(dtype)


def _plastic_net(rule, n_in=30, n_out=10, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    net = sl.Sequential(sl.Linear(n_in, n_out, bias=False), sl.LIF(beta=0.9, threshold=0.5)).to(dtype)
    with torch.no_grad():
        net[0].weight.uniform_(0.0, 0.3)
    rule.attach(net[0], post=net[1])
    return net


def test_update_equals_the_functional_terms_of_the_captured_spikes():
    """Attached STDP sees the Linear's input as pre spikes and the LIF's output as post spikes."""
    rule = sl.STDP(a_plus=0.01, a_minus=0.012, w_min=-1.0, w_max=1.0)
    net = _plastic_net(rule)
    x = _spikes((50, 4, 30), 0.2, seed=1)
    before = net[0].weight.detach().clone()
    with torch.no_grad():
        post = net(x)
    assert post.sum() > 0
    rule.update()
    ltp, ltd, _ = stdp_terms(x, post, rule.params)
    expected = apply_stdp(before, ltp, ltd, rule.params)
    assert (expected.abs() == 1.0).any() and (expected.abs() != 1.0).any()   # some weights reach a bound
    torch.testing.assert_close(net[0].weight.detach(), expected)
    with pytest.raises(ConfigError, match="no pre spikes"):   # each update consumes its spikes
        rule.update()


def test_recurrent_projection_pairs_previous_step_spikes():
    """On a RecurrentLIF, pre spikes are the layer's own spikes one step later (as the recurrent weights see
    them) and post spikes its spikes."""
    layer = sl.RecurrentLIF(12, beta=0.8, threshold=0.6)
    rule = sl.STDP(a_plus=0.02, a_minus=0.01, w_min=-1.0, w_max=1.0).attach(layer)
    before = layer.recurrent.weight.detach().clone()
    with torch.no_grad():
        spikes = layer(torch.rand(40, 3, 12) * 0.8)
    rule.update()
    pre = torch.cat([torch.zeros_like(spikes[:1]), spikes[:-1]])
    ltp, ltd, _ = stdp_terms(pre, spikes, rule.params)
    assert (ltp - ltd).abs().sum() > 0
    torch.testing.assert_close(layer.recurrent.weight.detach(), apply_stdp(before, ltp, ltd, rule.params))


@pytest.mark.parametrize("pairing", ["all", "nearest"])
def test_independent_batch_equals_sequential_runs(pairing):
    """batch='independent': B samples over three consecutive batches end with the weights of B networks run one
    after the other (bitwise against independent runs of one sample; to float64 rounding against shared-weight
    runs of one sample, with the same spikes)."""
    rule = sl.STDP(a_plus=0.004, a_minus=0.005, pairing=pairing, batch="independent", w_max=0.4)
    net = _plastic_net(rule, dtype=torch.float64)
    batches = [_spikes((40, 4, 30), 0.2, seed=s, dtype=torch.float64) for s in range(3)]
    template = copy.deepcopy(net[0].weight.detach())

    def run(model, rule, inputs):
        outputs = []
        for x in inputs:
            with torch.no_grad():
                outputs.append(model(x))
            rule.update()
        return outputs

    batched_out = run(net, rule, batches)
    assert not torch.equal(net[0].sample_weight[0], net[0].sample_weight[1])   # the samples learned apart
    for b in range(4):
        for batch_mode in ("independent", "sum"):
            alone_rule = sl.STDP(a_plus=0.004, a_minus=0.005, pairing=pairing, batch=batch_mode, w_max=0.4)
            alone = _plastic_net(alone_rule, dtype=torch.float64)
            with torch.no_grad():
                alone[0].weight.copy_(template)
            alone_out = run(alone, alone_rule, [x[:, b:b + 1] for x in batches])
            for mine, theirs in zip(batched_out, alone_out):
                assert torch.equal(mine[:, b:b + 1], theirs)
            if batch_mode == "independent":
                assert torch.equal(net[0].sample_weight[b], alone[0].sample_weight[0])
            else:
                torch.testing.assert_close(net[0].sample_weight[b], alone[0].weight.detach(), rtol=0, atol=1e-12)
    rule.reset_samples()
    assert net[0].sample_weight is None


def test_shared_batch_mean_is_the_sum_over_batch_size():
    x = _spikes((30, 6, 30), 0.2, seed=4)
    changes = {}
    for mode in ("sum", "mean"):
        rule = sl.STDP(a_plus=0.01, a_minus=0.01, batch=mode, w_min=-5.0, w_max=5.0)
        net = _plastic_net(rule)
        before = net[0].weight.detach().clone()
        with torch.no_grad():
            net(x)
        rule.update()
        changes[mode] = net[0].weight.detach() - before
    assert changes["sum"].abs().sum() > 0
    torch.testing.assert_close(changes["mean"] * 6, changes["sum"])


def test_homeostasis_holds_every_neuron_near_its_target_rate():
    """Neurons driven from 0.1x to 3x the threshold fire at 0-100 % at first; adaptive thresholds bring every
    one to 10 +- 2 % spikes per step."""
    torch.manual_seed(0)
    layer = sl.HomeostaticLIF(24, beta=0.8)
    rule = sl.Homeostasis(target_rate=0.1, eta=1.0).attach(layer)
    drive = torch.linspace(0.1, 3.0, 24)

    def rates():
        with torch.no_grad():
            return layer(torch.rand(100, 8, 24) * drive).mean((0, 1))

    layer.eval()
    initial = rates()
    assert initial.min() < 0.02 and initial.max() > 0.5
    layer.train()
    for _ in range(150):
        with torch.no_grad():
            layer(torch.rand(100, 8, 24) * drive)
        rule.update()
    layer.eval()
    final = rates()
    assert (final - 0.1).abs().max() < 0.02
    assert layer.thresholds().min() < 1.0 < layer.thresholds().max()    # silent neurons came down, busy ones up


def test_reward_stdp_zero_reward_no_change_and_sign_follows_reward():
    x = _spikes((40, 5, 30), 0.2, seed=5, dtype=torch.float64)
    plain = sl.STDP(a_plus=0.01, a_minus=0.012, w_min=-5.0, w_max=5.0)
    net = _plastic_net(plain, dtype=torch.float64)
    before = net[0].weight.detach().clone()
    with torch.no_grad():
        net(x)
    plain.update()
    stdp_change = net[0].weight.detach() - before
    assert stdp_change.abs().sum() > 0
    for reward, sign in ((torch.zeros(5), 0.0), (torch.ones(5), 1.0), (-2 * torch.ones(5), -2.0)):
        rule = sl.RewardSTDP(a_plus=0.01, a_minus=0.012, w_min=-5.0, w_max=5.0)
        net = _plastic_net(rule, dtype=torch.float64)
        with torch.no_grad():
            net(x)
        rule.update(reward=reward)
        change = net[0].weight.detach() - before
        if sign == 0:
            assert torch.equal(change, torch.zeros_like(change))
        else:
            torch.testing.assert_close(change, sign * stdp_change, rtol=0, atol=1e-12)


def test_reward_stdp_equals_an_explicit_eligibility_trace():
    """Per-step rewards and tau_eligibility: the matrix-product update equals Florian's MSTDPET loop with a
    (B, N_post, N_pre) eligibility trace, step by step."""
    x = _spikes((30, 3, 30), 0.25, seed=6, dtype=torch.float64)
    rule = sl.RewardSTDP(a_plus=0.01, a_minus=0.012, w_min=-5.0, w_max=5.0, tau_eligibility=8.0)
    net = _plastic_net(rule, dtype=torch.float64)
    before = net[0].weight.detach().clone()
    reward = torch.randn(30, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        post = net(x)
    rule.update(reward=reward)
    decay, m = math.exp(-1 / 8.0), math.exp(-1 / 20.0)   # eligibility and trace decays
    pre_trace, post_trace = torch.zeros(3, 30, dtype=torch.float64), torch.zeros(3, 10, dtype=torch.float64)
    eligibility = torch.zeros(3, 10, 30, dtype=torch.float64)
    total = torch.zeros(10, 30, dtype=torch.float64)
    for t in range(30):
        dw = 0.01 * post[t][:, :, None] * pre_trace[:, None, :] - 0.012 * post_trace[:, :, None] * x[t][:, None, :]
        eligibility = decay * eligibility + dw
        total += (reward[t][:, None, None] * eligibility).sum(0)
        pre_trace, post_trace = m * (pre_trace + x[t]), m * (post_trace + post[t])
    assert total.abs().sum() > 0
    torch.testing.assert_close(net[0].weight.detach() - before, total, rtol=0, atol=1e-12)


def test_supervised_stdp_learns_a_spatial_pattern_in_one_shot():
    """algorithms.md 5b.3: one output neuron, one presentation of a random pattern (20 of 100 inputs spiking at
    once) while a teacher makes it fire one step later. Afterwards it fires for the pattern every time, and for
    no pattern at Hamming distance >= 6 (400 random ones, 6 to 40); before, it fired for none."""
    torch.manual_seed(0)
    n, k, steps, onset = 100, 20, 12, 3
    net = sl.Sequential(sl.Linear(n, 1, bias=False), sl.LIF(beta=0.9, threshold=17.0))
    with torch.no_grad():
        net[0].weight.zero_()
    rule = sl.STDP(a_plus=1.0, a_minus=0.5, weight_dependence="multiplicative", w_max=1.0).attach(net[0], post=net[1])
    g = torch.Generator().manual_seed(1)
    pattern = torch.zeros(n)
    pattern[torch.randperm(n, generator=g)[:k]] = 1.0

    def present(patterns):                          # (P, n) spatial patterns -> (T, P, n) spike trains
        x = torch.zeros(steps, len(patterns), n)
        x[onset] = patterns
        return x

    def fires(patterns):
        net.eval()
        with torch.no_grad():
            return net(present(patterns)).sum(0)[:, 0] > 0

    def at_distance(d):                             # a pattern with k active inputs, Hamming distance d from it
        on, off = pattern.nonzero()[:, 0], (pattern == 0).nonzero()[:, 0]
        moved = d // 2
        other = pattern.clone()
        other[on[torch.randperm(k, generator=g)[:moved]]] = 0.0
        other[off[torch.randperm(n - k, generator=g)[:moved]]] = 1.0
        return other

    far = torch.stack([at_distance(d) for d in range(6, 41, 2) for _ in range(22)])[:400]
    assert not fires(pattern[None]).any() and not fires(far).any()
    net.train()
    with torch.no_grad():
        net(present(pattern[None]))
    teacher = torch.zeros(steps, 1, 1)
    teacher[onset + 1] = 1.0
    rule.update(post_spikes=teacher)              # the one presentation
    assert fires(pattern[None].repeat(10, 1)).all()
    assert not fires(far).any()
    near = torch.stack([at_distance(2) for _ in range(20)])
    assert fires(near).all()                      # a little tolerance: one input moved still fires


def test_attach_errors_are_clear():
    net = sl.Sequential(sl.Linear(4, 3), sl.LIF(), sl.Linear(3, 2), sl.LeakyIntegrator())
    with pytest.raises(ConfigError, match="post=the spiking neuron layer"):
        sl.STDP().attach(net[0])
    with pytest.raises(ConfigError, match="post=the spiking neuron layer"):
        sl.STDP().attach(net[2], post=net[3])
    with pytest.raises(ConfigError, match="attaches to an sl.Linear"):
        sl.STDP().attach(net[1], post=net[1])
    with pytest.raises(ConfigError, match="HomeostaticLIF"):
        sl.Homeostasis().attach(net[1])
    with pytest.raises(ConfigError, match="batch must be"):
        sl.STDP(batch="vmap")
    rule = sl.STDP().attach(net[0], post=net[1])
    with pytest.raises(ConfigError, match="already attached"):
        rule.attach(net[2], post=net[1])
    with pytest.raises(ConfigError, match="reward must be"):
        reward_rule = sl.RewardSTDP().attach(net[2], post=net[1])
        net(torch.zeros(5, 2, 4))
        reward_rule.update(reward=torch.ones(3))
    rule.detach()
    reward_rule.detach()
    assert sl.plasticity.local_rules(net) == {}
    with pytest.raises(ConfigError, match="no local rule"):
        Trainer(net, mode="local")


def _task(n=48, steps=15, features=30, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    rates = torch.full((n, features), 0.05)
    for c in range(classes):
        rates[labels == c, c * 10:(c + 1) * 10] = 0.4
    return TensorDataset((torch.rand(n, steps, features, generator=g) < rates[:, None, :]).float(), labels)


def _mixed_net():
    torch.manual_seed(0)
    net = sl.Sequential(sl.Linear(30, 16, bias=False), sl.LIF(beta=0.9, threshold=0.5), sl.Linear(16, 3),
                        sl.LeakyIntegrator(beta=0.9))
    with torch.no_grad():
        net[0].weight.uniform_(0.0, 0.2)
    sl.STDP(a_plus=2e-3, a_minus=2e-3, w_max=0.4).attach(net[0], post=net[1])
    return net


def test_local_mode_mixes_stdp_and_gradient_and_resumes_exactly(tmp_path):
    """One fit: the hidden weights learn by STDP only (no gradient reaches them), the readout by Adam; a run
    interrupted after one epoch and resumed ends with the same weights as an uninterrupted one."""
    data = _task()
    net = _mixed_net()
    hidden, readout = net[0].weight.detach().clone(), net[2].weight.detach().clone()
    trainer = Trainer(net, mode="local", epochs=2, batch_size=16, lr=1e-2, progress=False, out_dir=tmp_path / "full")
    history = trainer.fit(data)
    assert net[0].weight.grad is None and not net[0].weight.requires_grad
    assert not torch.equal(net[0].weight, hidden) and not torch.equal(net[2].weight.detach(), readout)
    assert [param for group in trainer.optimizer.param_groups for param in group["params"]] == [
        net[2].weight, net[2].bias]
    assert len(history) == 2

    first = Trainer(_mixed_net(), mode="local", epochs=2, batch_size=16, lr=1e-2, progress=False,
                    out_dir=tmp_path / "cut")
    first.epochs = 1        # stop after one epoch, as if killed during the second
    first.fit(data)
    torch.manual_seed(999)  # whatever the process did in between must not matter
    resumed = _mixed_net()
    Trainer(resumed, mode="local", epochs=2, batch_size=16, lr=1e-2, progress=False,
            out_dir=tmp_path / "cut").fit(data, resume=True)
    for name, value in net.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name
    loaded = sl.load(tmp_path / "full")        # an ordinary network: the rules are training machinery
    assert sl.plasticity.local_rules(loaded) == {}


def test_local_mode_without_gradient_parameters(tmp_path):
    """Every parameter under a rule: no optimiser at all; the independent mode's per-sample weights are saved
    in the checkpoint and restored on resume."""
    data = _task(n=32)
    torch.manual_seed(0)
    net = sl.Sequential(sl.Linear(30, 3, bias=False), sl.LIF(beta=0.9, threshold=0.5))
    with torch.no_grad():
        net[0].weight.uniform_(0.0, 0.2)
    rule = sl.STDP(a_plus=2e-3, a_minus=2e-3, w_max=0.4, batch="independent").attach(net[0], post=net[1])
    trainer = Trainer(net, loss="spike_count", mode="local", epochs=1, batch_size=16, progress=False,
                      out_dir=tmp_path)
    trainer.fit(data)
    assert trainer.optimizer is None and trainer.history[0]["lr"] is None
    saved = torch.load(tmp_path / "last.pt", weights_only=True)["local_rules"]
    torch.testing.assert_close(next(iter(saved.values()))["sample_weights"], net[0].sample_weight)
    rule.reset_samples()
    again = Trainer(net, loss="spike_count", mode="local", epochs=1, batch_size=16, progress=False, out_dir=tmp_path)
    again.resume()
    torch.testing.assert_close(net[0].sample_weight, next(iter(saved.values()))["sample_weights"])


def test_readme_local_learning_example_runs(tmp_path, monkeypatch):
    """The README's local-learning example runs as written and leaves a run folder."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (code,) = [block for block in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "sl.STDP(" in block]
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert (tmp_path / "runs/stdp/last.pt").is_file()
    net = namespace["net"]
    assert not net[0].weight.requires_grad and 0.0 <= net[0].weight.min() <= net[0].weight.max() <= 0.5
    assert sl.plasticity.local_rules(net)
