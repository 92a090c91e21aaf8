"""Config: defaults, presets, validation errors, derived facts."""

import dataclasses
import re

import pytest
from mbdpo_core.config import (
    MODEL_SIZES,
    Config,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_overrides,
)
from mbdpo_core.config.load import DEFAULT_YAML
from mbdpo_core.errors import ConfigError, UnknownTaskError


def test_every_yaml_key_is_a_schema_field_with_a_comment():
    lines = [ln for ln in DEFAULT_YAML.read_text().splitlines() if re.match(r"^\w+:", ln)]
    keys = [ln.split(":")[0] for ln in lines]
    user_fields = [f.name for f in dataclasses.fields(Config) if f.default is dataclasses.MISSING]
    assert keys == user_fields
    assert all("#" in ln.split(":", 1)[1] for ln in lines), "every key needs a one-line comment"


def test_paper_defaults_match_the_published_hyperparameters():
    cfg = load_config(["preset=paper"])
    assert (cfg.model_size, cfg.latent_dim, cfg.mlp_dim, cfg.num_q) == (5, 512, 512, 5)
    assert (cfg.diffusion_steps, cfg.diffusion_num_samples, cfg.diffusion_num_elites) == (
        20,
        512,
        64,
    )
    assert (cfg.horizon, cfg.batch_size, cfg.rho, cfg.lr, cfg.tau) == (3, 256, 0.5, 3e-4, 0.01)
    assert cfg.consistency_coef == 20 and cfg.reward_coef == 0.1 and cfg.value_coef == 0.1
    assert cfg.energy_eta == 0.01 and cfg.energy_pairing == "aligned"
    assert cfg.notes == ()


def test_auto_preset_picks_cpu_without_gpu_and_says_so():
    cfg = load_config([], gpu_available=False)
    assert cfg.preset == "cpu" and cfg.model_size == 1 and cfg.latent_dim == 128
    assert cfg.diffusion_num_samples == 64 and cfg.diffusion_num_elites == 8
    assert cfg.diffusion_steps == 6 and cfg.batch_size == 64
    assert any("CPU preset" in n for n in cfg.notes)
    assert load_config([], gpu_available=True).preset == "paper"


def test_model_size_preset_and_explicit_override():
    cfg = load_config(["preset=paper", "model_size=19"])
    assert cfg.enc_dim == MODEL_SIZES[19]["enc_dim"] and cfg.num_enc_layers == 3
    cfg = load_config(["preset=paper", "model_size=1", "mlp_dim=64"])
    assert cfg.mlp_dim == 64 and cfg.latent_dim == 128


def test_derived_facts_of_a_single_task():
    cfg = load_config(["task=cartpole-balance"])
    assert cfg.tasks == ("cartpole-balance",) and not cfg.multitask
    assert cfg.obs_shape == (5,) and cfg.action_dim == 1 and cfg.task_dim == 0
    assert cfg.episode_length == 500 and cfg.seed_steps == 2500
    assert cfg.discounts == (0.99,) and cfg.bin_size == pytest.approx(0.2)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("stpes=3", "Did you mean: steps"),
        ("model_size=6", "Valid choices: 1, 5, 19, 48, 317"),
        ("planner=cem", "Valid choices: diffusion, mppi, policy"),
        ("steps=many", "must be an integer"),
        ("preset=gpu", "Valid choices: auto, paper, cpu"),
        ("noequals", "key=value"),
        ("latent_dim=100", "multiple of simnorm_dim"),
        ("score_only_inference=true", "use_score_network"),
    ],
)
def test_bad_overrides_name_the_valid_choices(override, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_config([override])


def test_unknown_task_names_close_matches():
    with pytest.raises(UnknownTaskError, match="Did you mean: cartpole-balance"):
        load_config(["task=cartpole-balanc"])


def test_config_round_trips_through_json_dict():
    cfg = load_config(["task=cartpole-swingup", "seed=3"])
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_published_energy_names_are_aliases():
    cfg = load_config(["contrastive_eta=0.02", "contrastive_coef=2"])
    assert cfg.energy_eta == 0.02 and cfg.energy_coef == 2.0
    with pytest.raises(ConfigError, match="alias of energy_eta"):
        load_config({"contrastive_eta": 0.02, "energy_eta": 0.03})


def test_saved_config_of_the_previous_release_still_reads():
    old = config_to_dict(load_config([]))
    for k in ("coef", "eta", "clip", "momentum", "neg_noise"):
        old[f"contrastive_{k}"] = old.pop(f"energy_{k}")
    old["checkpoint"] = None  # release 0.1 wrote it; 0.2-0.4 did not
    for key in ("resume_from", "allow_backend_switch", "keep_checkpoints"):  # added since
        del old[key]
    assert config_from_dict(old) == load_config([])
    del old["checkpoint"]
    assert config_from_dict(old) == load_config([])
    del old["lr"]
    with pytest.raises(ConfigError, match=re.escape("Saved config lacks the keys ['lr']")):
        config_from_dict(old)


@pytest.mark.parametrize(
    ("given", "owner"),
    [
        ("checkpoint=runs/x", "finetune"),
        ("source_task=walker-walk", "finetune"),
        ("data_dir=data/mt30", "offline"),
    ],
)
def test_a_key_of_another_mode_is_an_error(given, owner):
    with pytest.raises(ConfigError, match=f"read by mode={owner} only"):
        load_config([given])


@pytest.mark.parametrize(
    "override, literal",
    [
        ("run_dir=a,b", """'run_dir="a,b"'"""),
        ("seed=range(1,3)", """'seed="range(1,3)"'"""),
        ("run_dir=glob(*)", """'run_dir="glob(*)"'"""),
        ("lr=interval(0,1)", """'lr="interval(0,1)"'"""),
        ("planner=choice(mppi,policy)", """'planner="choice(mppi,policy)"'"""),
    ],
)
def test_a_sweep_override_is_refused_and_says_how_to_quote(override, literal):
    with pytest.raises(ConfigError) as err:
        load_config([override])
    message = str(err.value)
    assert f"Override {override!r} is a Hydra sweep" in message
    assert "apps/train runs one configuration" in message
    assert message.endswith(f"quote it: {literal}.")


def test_the_quoting_the_sweep_error_suggests_gives_the_literal_value():
    with pytest.raises(ConfigError) as err:
        parse_overrides(["run_dir=a,b"])
    suggested = str(err.value).rsplit("quote it: ", 1)[1].rstrip(".")
    argv_word = suggested[1:-1]  # what the shell passes for '...'
    assert argv_word == 'run_dir="a,b"'
    assert load_config([argv_word]).run_dir == "a,b"
    assert parse_overrides(["run_dir='a,b'"]) == {"run_dir": "a,b"}
    assert parse_overrides([r"run_dir=a\,b"]) == {"run_dir": "a,b"}


@pytest.mark.parametrize("override", ["run_dir=[a,b]", "task={a:1}"])
def test_a_list_or_dict_override_is_refused(override):
    with pytest.raises(ConfigError, match=re.escape(f"Override {override!r} gives a")):
        parse_overrides([override])


def test_parsed_values_are_plain_python():
    overrides = [
        "task=walker-walk",
        "run_dir=runs/x y",
        'run_dir="a,b"',
        "seed=3",
        "lr=3e-4",
        "resume=true",
        "seed_steps=null",
        "steps=int(2.0)",
        "resume_from=step_500",
    ]
    for text in overrides:
        (value,) = parse_overrides([text]).values()
        assert type(value) in (str, int, float, bool, type(None)), text
    cfg = load_config(['run_dir="a,b"', "seed=3", "lr=3e-4", "steps=int(2000)"])
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        items = value if isinstance(value, tuple) else (value,)
        assert all(type(v) in (str, int, float, bool, type(None)) for v in items), field.name


def test_score_network_switches():
    """use_score_network plans with the net (published) unless score_planning=monte_carlo;
    score_only_inference needs the net to plan, and does nothing else alone (refused)."""
    assert not load_config([]).score_net_plans
    assert load_config(["use_score_network=true"]).score_net_plans
    assert load_config(["use_score_network=true", "score_only_inference=true"]).score_net_plans
    assert not load_config(["use_score_network=true", "score_planning=monte_carlo"]).score_net_plans
    with pytest.raises(ConfigError, match="Valid choices: network, monte_carlo"):
        load_config(["score_planning=mc"])
    with pytest.raises(ConfigError, match="use_score_network=true"):
        load_config(["score_only_inference=true"])
    with pytest.raises(ConfigError, match="contradicts score_planning=monte_carlo"):
        load_config(
            ["use_score_network=true", "score_only_inference=true", "score_planning=monte_carlo"]
        )
    old = config_to_dict(load_config(["use_score_network=true"]))
    del old["score_planning"]  # a config saved before the key existed takes the default
    assert config_from_dict(old).score_planning == "network"
