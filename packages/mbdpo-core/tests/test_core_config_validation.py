"""Every invalid value is refused by load_config with one line naming the key, the value and
what is valid; the edges of each range are accepted."""

import dataclasses
import re

import pytest
from mbdpo_core.config import Config, load_config
from mbdpo_core.errors import ConfigError

# (override, what the message must say): the valid ranges as the method needs them, written
# here by hand rather than read from the table under test.
REFUSED = [
    ("seed=-1", "Invalid seed=-1: must be in [0, 4294967295]"),
    ("seed=4294967296", "Invalid seed=4294967296: must be in [0, 4294967295]"),
    ("steps=0", "Invalid steps=0: must be >= 1"),
    ("eval_freq=-1", "Invalid eval_freq=-1: must be >= 0"),
    ("eval_episodes=0", "Invalid eval_episodes=0: must be >= 1"),
    ("eval_workers=-1", "Invalid eval_workers=-1: must be >= 0 (0 = one per CPU core)"),
    ("video_every=-1", "Invalid video_every=-1: must be >= 0 (0 = never)"),
    ("log_freq=0", "Invalid log_freq=0: must be >= 1"),
    ("save_every=-5", "Invalid save_every=-5: must be >= 0"),
    ("keep_checkpoints=-1", "Invalid keep_checkpoints=-1: must be >= 0 (0 = keep all)"),
    ("batch_size=0", "Invalid batch_size=0: must be >= 1"),
    ("buffer_size=0", "Invalid buffer_size=0: must be >= 1"),
    ("lr=-1", "Invalid lr=-1.0: must be > 0"),
    ("lr=0", "Invalid lr=0.0: must be > 0"),
    ("enc_lr_scale=-0.1", "Invalid enc_lr_scale=-0.1: must be >= 0"),
    ("grad_clip_norm=0", "Invalid grad_clip_norm=0.0: must be > 0"),
    ("rho=0", "Invalid rho=0.0: must be in (0, 1]"),
    ("rho=1.5", "Invalid rho=1.5: must be in (0, 1]"),
    ("tau=0", "Invalid tau=0.0: must be in (0, 1]"),
    ("tau=2", "Invalid tau=2.0: must be in (0, 1]"),
    ("consistency_coef=-1", "Invalid consistency_coef=-1.0: must be >= 0"),
    ("reward_coef=-1", "Invalid reward_coef=-1.0: must be >= 0"),
    ("value_coef=-1", "Invalid value_coef=-1.0: must be >= 0"),
    ("termination_coef=-1", "Invalid termination_coef=-1.0: must be >= 0"),
    ("discount_denom=0", "Invalid discount_denom=0.0: must be > 0"),
    ("discount_min=0", "Invalid discount_min=0.0: must be in (0, 1]"),
    ("discount_max=1.01", "Invalid discount_max=1.01: must be in (0, 1]"),
    ("energy_coef=-1", "Invalid energy_coef=-1.0: must be >= 0"),
    ("energy_eta=-0.01", "Invalid energy_eta=-0.01: must be >= 0"),
    ("energy_clip=0", "Invalid energy_clip=0.0: must be > 0"),
    ("energy_momentum=1", "Invalid energy_momentum=1.0: must be in [0, 1)"),
    ("energy_momentum=-0.5", "Invalid energy_momentum=-0.5: must be in [0, 1)"),
    ("energy_neg_noise=-1", "Invalid energy_neg_noise=-1.0: must be >= 0"),
    ("score_loss_coef=-1", "Invalid score_loss_coef=-1.0: must be >= 0"),
    ("diffusion_num_samples_mf=0", "Invalid diffusion_num_samples_mf=0: must be >= 1"),
    ("diffusion_time_embed_dim=1", "Invalid diffusion_time_embed_dim=1: must be >= 2"),
    ("horizon=0", "Invalid horizon=0: must be >= 1"),
    ("diffusion_steps=0", "Invalid diffusion_steps=0: must be >= 1"),
    ("diffusion_beta0=0", "Invalid diffusion_beta0=0.0: must be in (0, 1)"),
    ("diffusion_betaT=1", "Invalid diffusion_betaT=1.0: must be in (0, 1)"),
    ("diffusion_num_samples=0", "Invalid diffusion_num_samples=0: must be >= 1"),
    ("diffusion_num_elites=0", "Invalid diffusion_num_elites=0: must be >= 1"),
    ("diffusion_num_pi_trajs=-1", "Invalid diffusion_num_pi_trajs=-1: must be >= 0"),
    ("diffusion_temperature=0", "Invalid diffusion_temperature=0.0: must be > 0"),
    ("diffusion_action_noise=-0.1", "Invalid diffusion_action_noise=-0.1: must be >= 0"),
    ("iterations=0", "Invalid iterations=0: must be >= 1"),
    ("num_samples=0", "Invalid num_samples=0: must be >= 1"),
    ("num_elites=0", "Invalid num_elites=0: must be >= 1"),
    ("num_pi_trajs=-1", "Invalid num_pi_trajs=-1: must be >= 0"),
    ("min_std=-0.1", "Invalid min_std=-0.1: must be >= 0"),
    ("max_std=0", "Invalid max_std=0.0: must be > 0"),
    ("temperature=0", "Invalid temperature=0.0: must be > 0"),
    ("entropy_coef=-1", "Invalid entropy_coef=-1.0: must be >= 0"),
    ("num_bins=1", "Invalid num_bins=1: must be >= 2"),
    ("num_enc_layers=0", "Invalid num_enc_layers=0: must be >= 1"),
    ("enc_dim=0", "Invalid enc_dim=0: must be >= 1"),
    ("mlp_dim=0", "Invalid mlp_dim=0: must be >= 1"),
    ("latent_dim=0", "Invalid latent_dim=0: must be >= 1"),
    ("num_q=1", "Invalid num_q=1: must be >= 2 (planning and training take the min of two"),
    ("num_channels=0", "Invalid num_channels=0: must be >= 1"),
    ("task_dim=0", "Invalid task_dim=0: must be >= 1"),
    ("dropout=1", "Invalid dropout=1.0: must be in [0, 1)"),
    ("dropout=-0.1", "Invalid dropout=-0.1: must be in [0, 1)"),
    ("simnorm_dim=0", "Invalid simnorm_dim=0: must be >= 1"),
    ("lr=nan", "lr must be a finite number, got nan"),
    ("vmax=inf", "vmax must be a finite number, got inf"),
    ("data_parallel_devices=0", "Invalid data_parallel_devices=0: must be >= 1"),
    ("num_envs=0", "Invalid num_envs=0: must be >= 1"),
    ("updates_per_step=0", "Invalid updates_per_step=0: must be >= 1"),
]

# pairs of keys that must be ordered: (overrides, message)
REFUSED_PAIRS = [
    (
        ["discount_min=0.99", "discount_max=0.98"],
        "Invalid discount_min=0.99 with discount_max=0.98: discount_min must be <= discount_max",
    ),
    (
        ["diffusion_beta0=0.1", "diffusion_betaT=0.01"],
        "Invalid diffusion_beta0=0.1 with diffusion_betaT=0.01: diffusion_beta0 must be <= "
        "diffusion_betaT",
    ),
    (
        ["diffusion_num_samples=32", "diffusion_num_elites=33"],
        "Invalid diffusion_num_elites=33 with diffusion_num_samples=32: diffusion_num_elites "
        "must be <= diffusion_num_samples",
    ),
    (
        ["diffusion_num_samples=32", "diffusion_num_elites=8", "diffusion_num_pi_trajs=40"],
        "Invalid diffusion_num_pi_trajs=40 with diffusion_num_samples=32: "
        "diffusion_num_pi_trajs must be <= diffusion_num_samples",
    ),
    (
        ["num_samples=16", "num_elites=17"],
        "Invalid num_elites=17 with num_samples=16: num_elites must be <= num_samples",
    ),
    (
        ["num_samples=16", "num_elites=8", "num_pi_trajs=17"],
        "Invalid num_pi_trajs=17 with num_samples=16: num_pi_trajs must be <= num_samples",
    ),
    (
        ["min_std=3", "max_std=2"],
        "Invalid min_std=3.0 with max_std=2.0: min_std must be <= max_std",
    ),
    (
        ["log_std_min=2", "log_std_max=2"],
        "Invalid log_std_min=2.0 with log_std_max=2.0: log_std_min must be < log_std_max",
    ),
    (["vmin=5", "vmax=5"], "Invalid vmin=5.0 with vmax=5.0: vmin must be < vmax"),
    (
        ["batch_size=6", "data_parallel_devices=4"],
        "Invalid data_parallel_devices=4: must divide batch_size=6",
    ),
]

ACCEPTED_EDGES = [
    "seed=0",
    "seed=4294967295",
    "eval_freq=0",
    "save_every=0",
    "keep_checkpoints=0",
    "enc_lr_scale=0",
    "rho=1",
    "tau=1",
    "consistency_coef=0",
    "discount_min=0.995",
    "discount_max=0.95 discount_min=0.95",
    "energy_momentum=0",
    "energy_eta=0",
    "diffusion_time_embed_dim=2",
    "diffusion_beta0=0.01 diffusion_betaT=0.01",
    "diffusion_num_samples=8 diffusion_num_elites=8 diffusion_num_pi_trajs=8",
    "diffusion_num_pi_trajs=0",
    "num_samples=8 num_elites=8 num_pi_trajs=8",
    "min_std=0",
    "min_std=2 max_std=2",
    "num_bins=2",
    "num_q=2",
    "dropout=0",
    "log_std_min=-1 log_std_max=1",
    "vmin=-1 vmax=1",
]


@pytest.mark.parametrize("override, message", REFUSED, ids=[o for o, _ in REFUSED])
def test_a_value_out_of_range_is_refused_naming_key_value_and_range(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load_config(["preset=cpu", override])
    assert "\n" not in str(err.value)


def test_every_numeric_key_has_a_refused_value():
    numeric = {
        f.name
        for f in dataclasses.fields(Config)
        if f.default is dataclasses.MISSING and str(f.type).split(" ")[0] in ("int", "float")
    }
    refused = {override.split("=")[0] for override, _ in REFUSED}
    refused |= {o.split("=")[0] for overrides, _ in REFUSED_PAIRS for o in overrides}
    refused |= {"seed_steps", "model_size"}  # tested below / a choice
    assert numeric - refused == set()


@pytest.mark.parametrize("overrides, message", REFUSED_PAIRS)
def test_keys_that_must_be_ordered_are_refused_together(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(["preset=paper", *overrides])


@pytest.mark.parametrize("overrides", ACCEPTED_EDGES)
def test_the_edges_of_each_range_are_accepted(overrides):
    load_config(["preset=cpu", *overrides.split()])


def test_buffer_must_hold_one_episode():
    # cartpole-balance: 500 steps per episode, so 501 rows (reset observation + one per step)
    with pytest.raises(ConfigError) as err:
        load_config(["task=cartpole-balance", "buffer_size=100"])
    message = str(err.value)
    assert "Invalid buffer_size=100: must be >= 501" in message
    assert "500 steps take 501 rows" in message
    assert load_config(["task=cartpole-balance", "buffer_size=501"]).buffer_size == 501
    # Meta-World episodes are 100 steps
    assert load_config(["task=mw-reach", "buffer_size=101"]).buffer_size == 101
    with pytest.raises(ConfigError, match=re.escape("must be >= 101")):
        load_config(["task=mw-reach", "buffer_size=100"])


def test_seed_steps_must_cover_one_episode_or_be_zero_and_says_the_default_rule():
    with pytest.raises(ConfigError) as err:
        load_config(["task=cartpole-balance", "seed_steps=499"])
    message = str(err.value)
    assert "Invalid seed_steps=499: must be >= 500" in message
    assert "null = max(1000, 5 x episode_length) = 2500" in message
    assert "or 0 (no random steps" in message
    assert load_config(["task=cartpole-balance", "seed_steps=500"]).seed_steps == 500
    assert load_config(["task=cartpole-balance", "seed_steps=0"]).seed_steps == 0
    assert load_config(["task=mw-reach", "seed_steps=100"]).seed_steps == 100
    with pytest.raises(ConfigError, match=re.escape("seed_steps=499: must be >= 500")):
        load_config(["task=mt80", "seed_steps=499"])  # the longest episode of the set


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "gpu", "gpu:1"])
def test_a_gpu_device_without_a_gpu_is_refused_naming_what_is_available(device):
    with pytest.raises(ConfigError) as err:
        load_config([f"device={device}"], backend="jax", gpu_available=False)
    message = str(err.value)
    assert f"device={device} but the jax backend sees no GPU" in message
    assert "device=cpu or device=auto" in message
    assert load_config([f"device={device}"], backend="jax", gpu_available=True).device == device


@pytest.mark.parametrize(
    "backend, device, valid",
    [
        ("torch", "gpu", "auto, cpu, cuda, cuda:N"),
        ("torch", "gpu:0", "auto, cpu, cuda, cuda:N"),
        ("torch", "cpu:0", "auto, cpu, cuda, cuda:N"),
        ("torch", "cuda:", "auto, cpu, cuda, cuda:N"),
        ("jax", "tpu", "auto, cpu, gpu, gpu:N, cuda, cuda:N"),
        ("jax", "cuda:x", "auto, cpu, gpu, gpu:N, cuda, cuda:N"),
        ("none", "mps", "auto, cpu, gpu, gpu:N, cuda, cuda:N"),
    ],
)
def test_an_unknown_device_is_refused_with_the_backends_choices(backend, device, valid):
    with pytest.raises(ConfigError, match=re.escape(f"Valid choices: {valid}.")) as err:
        load_config([f"device={device}"], backend=backend, gpu_available=True)
    assert f"Invalid device={device!r}" in str(err.value)


def test_cpu_and_auto_devices_need_no_gpu():
    for backend in ("torch", "jax", "none"):
        for device in ("cpu", "auto"):
            assert load_config([f"device={device}"], backend=backend).device == device
    assert load_config(["device=cuda:1"], backend="torch", gpu_available=True).device == "cuda:1"


@pytest.mark.parametrize("task, suite", [("mw-reach", "metaworld"), ("myo-reach", "myosuite")])
def test_rgb_on_a_task_without_pixels_is_refused_naming_the_suite_that_has_them(task, suite):
    with pytest.raises(ConfigError) as err:
        load_config([f"task={task}", "obs=rgb"])
    message = str(err.value)
    assert f"obs=rgb is not available for task={task}" in message
    assert f"{suite} tasks have no pixel observations; only dmcontrol tasks do" in message
    assert "obs=state" in message


def test_rgb_on_a_dmcontrol_task_is_accepted():
    assert load_config(["task=walker-walk", "obs=rgb"]).obs_shape == (9, 64, 64)


def test_resume_from_must_name_a_checkpoint_and_needs_resume():
    with pytest.raises(ConfigError, match=re.escape("Invalid resume_from='5000': must be step_N")):
        load_config(["resume=true", "resume_from=5000"])
    with pytest.raises(ConfigError, match=re.escape("resume_from=step_5000 needs resume=true")):
        load_config(["resume_from=step_5000"])
    cfg = load_config(["resume=true", "resume_from=step_5000"])
    assert cfg.resume_from == "step_5000"


def test_values_given_as_a_dict_are_validated_too():
    with pytest.raises(ConfigError, match=re.escape("Invalid num_q=1: must be >= 2")):
        load_config({"num_q": 1})
    with pytest.raises(ConfigError, match="run_dir must be a string"):
        load_config({"run_dir": ["a", "b"]})
