import json

import pytest
import torch
from torch.utils.data import TensorDataset

import spikelab as sl
from spikelab.errors import CheckpointError, ConfigError
from spikelab.training import Trainer, load_checkpoint


def rate_coded_task(n=240, steps=12, features=20, classes=3, seed=0):
    """Class c makes input channels of group c fire at 40 %, the rest at 5 %: learnable in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    rates = torch.full((n, features), 0.05)
    group = features // classes
    for c in range(classes):
        rates[labels == c, c * group:(c + 1) * group] = 0.4
    frames = (torch.rand(n, steps, features, generator=g) < rates[:, None, :]).float()
    return TensorDataset(frames, labels)


def small_net(beta=0.9, readout_beta=0.9, seed=0):
    torch.manual_seed(seed)
    return sl.Sequential(sl.Linear(20, 32), sl.LIF(beta=beta), sl.Linear(32, 16), sl.LIF(beta=beta),
                         sl.Linear(16, 3), sl.LeakyIntegrator(beta=readout_beta))


def gradients(mode, beta, readout_beta, loss="per_step", k=None):
    net = small_net(beta, readout_beta)
    trainer = Trainer(net, loss=loss, mode=mode, sltt_k=k, progress=False)
    frames, labels = rate_coded_task(n=16)[:]
    x = frames.transpose(0, 1).contiguous() * 1.5
    trainer.accumulate_gradients(x, labels)
    return {name: p.grad.clone() for name, p in net.named_parameters()}


def test_sltt_equals_bptt_exactly_without_temporal_route():
    bptt = gradients("bptt", beta=0.0, readout_beta=0.0)
    sltt = gradients("sltt", beta=0.0, readout_beta=0.0)
    assert any(g.abs().sum() > 0 for g in bptt.values())
    for name in bptt:
        torch.testing.assert_close(sltt[name], bptt[name], rtol=1e-5, atol=1e-7, msg=name)


def test_sltt_differs_from_bptt_with_leak():
    bptt = gradients("bptt", beta=0.9, readout_beta=0.9)
    sltt = gradients("sltt", beta=0.9, readout_beta=0.9)
    differences = [(sltt[n] - bptt[n]).abs().max().item() for n in bptt]
    assert max(differences) > 1e-4
    # the spatial route carries most of the gradient: still well aligned with BPTT's
    cosine = torch.nn.functional.cosine_similarity(sltt["0.weight"].flatten(), bptt["0.weight"].flatten(), dim=0)
    assert cosine > 0.5


def test_sltt_k_with_all_steps_equals_sltt():
    torch.manual_seed(3)
    all_steps = gradients("sltt-k", beta=0.9, readout_beta=0.9, k=12)
    sltt = gradients("sltt", beta=0.9, readout_beta=0.9)
    for name in sltt:
        torch.testing.assert_close(all_steps[name], sltt[name], msg=name)


def test_sltt_k_touches_only_k_steps():
    torch.manual_seed(0)
    one = gradients("sltt-k", beta=0.9, readout_beta=0.9, k=1)
    full = gradients("sltt", beta=0.9, readout_beta=0.9)
    assert any((one[n] - full[n]).abs().max() > 1e-6 for n in full)


@pytest.mark.parametrize("mode", ["bptt", "sltt", "sltt-k"])
def test_every_mode_learns_rate_task(mode):
    data = rate_coded_task()
    test = rate_coded_task(n=90, seed=1)
    trainer = Trainer(small_net(), mode=mode, sltt_k=4, lr=5e-3, epochs=6, batch_size=24, progress=False)
    history = trainer.fit(data)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert trainer.evaluate(test)["accuracy"] > 0.85


def test_evaluate_gives_confusion_matrix():
    trainer = Trainer(small_net(), epochs=1, progress=False)
    result = trainer.evaluate(rate_coded_task(n=30))
    confusion = torch.tensor(result["confusion"])
    assert confusion.shape == (3, 3)
    assert confusion.sum() == 30
    assert confusion.sum(1).tolist() == [10, 10, 10]
    assert result["accuracy"] == pytest.approx(confusion.trace().item() / 30)


def test_run_folder_holds_checkpoints_metrics_and_curve(tmp_path):
    data, val = rate_coded_task(), rate_coded_task(n=60, seed=2)
    trainer = Trainer(small_net(), epochs=3, batch_size=32, out_dir=tmp_path, model_name="tiny", progress=False,
                      config={"note": "test"})
    trainer.fit(data, val)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in lines] == [1, 2, 3]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"} <= set(lines[0])
    assert (tmp_path / "curve.png").stat().st_size > 1000
    last, best = load_checkpoint(tmp_path / "last.pt"), load_checkpoint(tmp_path / "best.pt")
    assert last["epoch"] == 3 and last["model_name"] == "tiny" and last["config"]["note"] == "test"
    best_epoch = max(lines, key=lambda row: row["val_accuracy"])["epoch"]
    assert best["epoch"] == best_epoch
    model = sl.load(tmp_path)
    assert model.run_info["epoch"] == best_epoch
    torch.testing.assert_close(model.state_dict()["0.weight"], best["model_state"]["0.weight"])


def test_resume_matches_uninterrupted_run(tmp_path):
    data, val = rate_coded_task(), rate_coded_task(n=60, seed=2)

    def trainer(out, epochs):
        net = sl.Sequential(sl.Linear(20, 32), sl.LIF(), sl.Dropout(0.3), sl.Linear(32, 3), sl.LeakyIntegrator())
        torch.manual_seed(0)
        for p in net.parameters():
            torch.nn.init.normal_(p, std=0.3)
        return Trainer(net, epochs=epochs, batch_size=32, out_dir=out, progress=False, seed=5)

    torch.manual_seed(11)
    straight = trainer(tmp_path / "a", 4)
    straight.fit(data, val)
    torch.manual_seed(11)
    first = trainer(tmp_path / "b", 4)
    first.epochs = 2  # stop after two epochs, as if killed during the third
    first.fit(data, val)
    torch.manual_seed(999)  # whatever the process did in between must not matter
    resumed = trainer(tmp_path / "b", 4)
    resumed.fit(data, val, resume=True)
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert [r["val_loss"] for r in straight.history] == [r["val_loss"] for r in resumed.history]


def test_bad_mode_and_optimizer_are_config_errors():
    with pytest.raises(ConfigError, match="bptt, sltt, sltt-k"):
        Trainer(small_net(), mode="rtrl")
    with pytest.raises(ConfigError, match="adam"):
        Trainer(small_net(), optimizer="lion")
    with pytest.raises(ConfigError, match="step\\(\\)"):
        Trainer(torch.nn.Linear(2, 2), mode="sltt")


def test_resume_without_checkpoint_is_clear(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Trainer(small_net(), out_dir=tmp_path, progress=False).fit(rate_coded_task(), resume=True)


def test_layers_with_a_schedule_are_told_each_epoch_and_clamped_each_step():
    class Scheduled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.epochs_seen, self.clamps = [], 0

        def forward(self, x):
            return x

        def step(self, x_t, state=None):
            return x_t, state

        def set_epoch(self, epoch, epochs):
            self.epochs_seen.append((epoch, epochs))

        def clamp_parameters(self):
            self.clamps += 1

    probe = Scheduled()
    net = sl.Sequential(sl.Linear(20, 3), probe, sl.LeakyIntegrator())
    Trainer(net, epochs=3, batch_size=120, progress=False).fit(rate_coded_task())
    assert probe.epochs_seen == [(0, 3), (1, 3), (2, 3)]
    assert probe.clamps == 3 * 2  # two batches of 120 per epoch


def test_parameter_groups_keep_their_own_learning_rates():
    net = small_net()
    first, rest = list(net[0].parameters()), [p for p in net.parameters() if all(p is not q for q in net[0].parameters())]
    trainer = Trainer(net, optimizer="sgd", lr=0.01, weight_decay=1e-4, scheduler="none", progress=False,
                      param_groups=[{"params": first, "lr": 0.5, "weight_decay": 0.0}, {"params": rest}])
    (a, b) = trainer.optimizer.param_groups
    assert (a["lr"], a["weight_decay"], b["lr"], b["weight_decay"]) == (0.5, 0.0, 0.01, 1e-4)
    assert a["momentum"] == b["momentum"] == 0.9
    assert trainer.config["optimizer"] == "sgd"


def test_onecycle_schedule_matches_torch_and_leaves_delay_positions_on_cosine():
    import spikelab as sl
    from spikelab.training.trainer import cosine_factor, one_cycle_factor

    net = sl.Sequential(sl.DelayedLinear(4, 3, max_delay=5), sl.LIF(), sl.Linear(3, 2), sl.LeakyIntegrator())
    epochs = 20
    trainer = sl.Trainer(net, epochs=epochs, scheduler="onecycle", progress=False,
                         param_groups=sl.delay_param_groups(net, lr=1e-3, position_lr=0.1))
    reference_opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    reference = torch.optim.lr_scheduler.OneCycleLR(reference_opt, max_lr=5e-3, total_steps=epochs)
    for epoch in range(epochs):
        weights, positions = (group["lr"] for group in trainer.optimizer.param_groups)
        assert weights == pytest.approx(reference_opt.param_groups[0]["lr"], rel=1e-9)
        assert positions == pytest.approx(0.1 * cosine_factor(epoch, epochs), rel=1e-9, abs=1e-15)
        reference_opt.step()
        reference.step()
        trainer.optimizer.step()
        trainer.scheduler.step()
    assert one_cycle_factor(0, 1) == 1.0          # a one-epoch run trains at its base rate


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_precision_feeds_low_precision_to_the_scan_and_learns(precision, tmp_path):
    """Under autocast the LIF layers receive low-precision currents (and integrate them in float32); the network
    still learns the rate-coded task, and fp16's loss scale travels in the checkpoint."""
    net = small_net()
    dtypes = []
    net[1].register_forward_hook(lambda module, args, out: dtypes.append((args[0].dtype, out.dtype)))
    trainer = Trainer(net, lr=5e-3, epochs=4, batch_size=32, precision=precision, out_dir=tmp_path, progress=False)
    history = trainer.fit(rate_coded_task())
    low = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert set(dtypes) == {(low, low)}
    assert history[-1]["train_accuracy"] > 0.8 and history[-1]["train_loss"] < history[0]["train_loss"]
    scaler_state = load_checkpoint(tmp_path / "last.pt")["scaler_state"]
    assert (scaler_state is not None) == (precision == "fp16")
    with pytest.raises(ConfigError, match="precision"):
        Trainer(small_net(), precision="fp8")
