"""The normalised score and the summary of a many-task evaluation, against numbers worked out
by hand."""

import pytest
from mbdpo_core.errors import UnknownTaskError
from mbdpo_core.scores import normalised_score, summarise


def test_normalised_score_is_success_for_metaworld_and_return_over_ten_otherwise():
    assert normalised_score("mw-reach", 812.0, 0.7) == pytest.approx(70.0)
    assert normalised_score("walker-walk", 812.0, 0.7) == pytest.approx(81.2)
    assert normalised_score("myo-reach", 40.0, 1.0) == pytest.approx(4.0)
    with pytest.raises(UnknownTaskError, match="walker-walk"):
        normalised_score("walker-wlak", 1.0, 0.0)


def test_summary_of_one_suite_has_the_means_and_no_suite_columns():
    out = summarise(
        {
            "walker-walk": {"episode_reward": 900.0, "episode_success": 0.0, "episode_length": 500},
            "cartpole-balance": {
                "episode_reward": 500.0,
                "episode_success": 0.0,
                "episode_length": 500,
            },
        }
    )
    # (900 + 500) / 2 = 700; scores 90 and 50 -> 70
    assert out == pytest.approx(
        {
            "episode_reward": 700.0,
            "episode_success": 0.0,
            "episode_length": 500.0,
            "normalised_score": 70.0,
        }
    )


def test_summary_of_two_suites_adds_the_means_of_each_suite():
    per_task = {
        "walker-walk": {"episode_reward": 900.0, "episode_success": 0.0, "episode_length": 500.0},
        "mw-reach": {"episode_reward": 1000.0, "episode_success": 1.0, "episode_length": 100.0},
        "mw-push": {"episode_reward": 200.0, "episode_success": 0.5, "episode_length": 100.0},
    }
    out = summarise(per_task)
    # scores: walker 900 / 10 = 90; reach 1.0 x 100 = 100; push 0.5 x 100 = 50
    expected = {
        "episode_reward": (900 + 1000 + 200) / 3,  # 700
        "episode_success": (0 + 1 + 0.5) / 3,  # 0.5
        "episode_length": (500 + 100 + 100) / 3,
        "normalised_score": (90 + 100 + 50) / 3,  # 80
        "dmcontrol/episode_reward": 900.0,
        "dmcontrol/episode_success": 0.0,
        "dmcontrol/normalised_score": 90.0,
        "metaworld/episode_reward": 600.0,
        "metaworld/episode_success": 0.75,
        "metaworld/normalised_score": 75.0,
    }
    assert out == pytest.approx(expected)
    assert list(out) == list(expected)
    assert all(type(v) is float for v in out.values())


def test_summary_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="at least one task"):
        summarise({})
