"""describe(topic): the listings behind `apps/train list keys|presets|tasks|planners`."""

import dataclasses
import re
from dataclasses import MISSING

import pytest
from mbdpo_core import tasks
from mbdpo_core.config import TOPICS, Config, describe
from mbdpo_core.config.describe import PLANNERS
from mbdpo_core.config.load import CHOICES, DEFAULT_YAML
from mbdpo_core.errors import ConfigError


def test_topics():
    assert TOPICS == ("keys", "presets", "tasks", "planners")


def test_an_unknown_topic_names_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        describe("task")
    message = str(err.value)
    assert "Unknown topic 'task'" in message and "Did you mean: tasks?" in message
    assert "Valid topics: keys, presets, tasks, planners." in message


def test_keys_lists_every_yaml_key_with_its_default_and_comment_under_its_section():
    listing = describe("keys").splitlines()
    section = None
    expected: dict[str, tuple[str, str, str]] = {}  # key -> (section, default, comment)
    for line in DEFAULT_YAML.read_text().splitlines():
        if line.startswith("# --- "):
            section = line.removeprefix("# --- ").removesuffix(" ---")
        elif re.match(r"^\w+:", line):
            key, rest = line.split(":", 1)
            default, comment = (part.strip() for part in rest.split("#", 1))
            expected[key] = (section, default, comment)
    assert list(expected) == [f.name for f in dataclasses.fields(Config) if f.default is MISSING]
    for key, (section, default, comment) in expected.items():
        (index,) = [i for i, ln in enumerate(listing) if ln.split()[:1] == [f"{key}={default}"]]
        assert listing[index].endswith(comment), key
        header = max(i for i, ln in enumerate(listing[:index]) if ln and not ln.startswith(" "))
        assert listing[header] == f"{section}:", key


def test_keys_anchors():
    listing = describe("keys")
    assert "  lr=3.0e-4 " in listing and "Adam learning rate" in listing
    assert listing.index("world-model training:") < listing.index("  lr=3.0e-4")
    assert listing.index("  lr=3.0e-4") < listing.index("energy head F")
    assert "  num_q=5 " in listing and "Q-ensemble members" in listing


def test_presets_lists_each_preset_its_values_and_the_model_sizes():
    listing = describe("presets")
    for line in (
        "  auto   cpu when the backend sees no GPU, else paper",
        "  paper  the published settings",
        "  cpu    a laptop-CPU first try",
        "  1    enc_dim=256 mlp_dim=384 latent_dim=128 num_enc_layers=2 num_q=2",
        "  5    enc_dim=256 mlp_dim=512 latent_dim=512 num_enc_layers=2 num_q=5",
        "  19   enc_dim=1024 mlp_dim=1024 latent_dim=768 num_enc_layers=3 num_q=5",
        "  48   enc_dim=1792 mlp_dim=1792 latent_dim=768 num_enc_layers=4 num_q=5",
        "  317  enc_dim=4096 mlp_dim=4096 latent_dim=1376 num_enc_layers=5 num_q=8",
    ):
        assert line in listing, line
    words = listing.split()
    for value in ("model_size=1", "batch_size=64", "diffusion_steps=6", "save_every=2500"):
        assert value in words


def test_tasks_lists_every_task_by_suite_the_sets_and_rgb_support():
    listing = describe("tasks")
    words = set(listing.split())
    assert set(tasks.TASKS) <= words
    lines = listing.splitlines()
    assert "dmcontrol (39 tasks, 500 steps per episode, action repeat 2, obs=state|rgb):" in lines
    assert "metaworld (50 tasks, 100 steps per episode, action repeat 2, obs=state):" in lines
    assert "maniskill (5 tasks, up to 100 steps per episode, action repeat 2, obs=state):" in lines
    assert "myosuite (10 tasks, 100 steps per episode, action repeat 1, obs=state):" in lines
    assert any(ln.split()[:2] == ["ball_in_cup", "cup-catch"] for ln in lines)
    assert any(ln.startswith("  mt30  30 tasks (30 dmcontrol)") for ln in lines)
    assert any(ln.startswith("  mt80  80 tasks (30 dmcontrol + 50 metaworld)") for ln in lines)
    groups = listing[listing.index("Task groups (not a task= value") :]
    assert "visual (10): acrobot-swingup" in groups and "locomotion (7): dog-walk" in groups
    assert "metaworld (50): every metaworld task" in groups


def test_planners_lists_each_planner_with_the_keys_that_tune_it():
    listing = describe("planners")
    lines = listing.splitlines()
    assert [ln.split()[0] for ln in lines if ln.startswith("  ") and ln[2].isalpha()] == [
        "diffusion",
        "mppi",
        "policy",
    ]
    mppi = listing[listing.index("  mppi ") : listing.index("  policy ")]
    assert "iterations=6" in mppi and "num_elites=64" in mppi and "diffusion_" not in mppi
    diffusion = listing[listing.index("  diffusion ") : listing.index("  mppi ")]
    assert "diffusion_steps=20" in diffusion and "diffusion_num_elites=64" in diffusion


def test_planner_table_matches_the_valid_planners_and_keys():
    assert tuple(PLANNERS) == CHOICES["planner"]
    yaml_keys = {ln.split(":")[0] for ln in DEFAULT_YAML.read_text().splitlines()}
    assert {k for _, keys in PLANNERS.values() for k in keys} <= yaml_keys
