"""Named presets: model sizes and the CPU preset for machines without a GPU
(docs/design.md#configuration)."""

from __future__ import annotations

MODEL_SIZES: dict[int, dict[str, int]] = {
    1: {"enc_dim": 256, "mlp_dim": 384, "latent_dim": 128, "num_enc_layers": 2, "num_q": 2},
    5: {"enc_dim": 256, "mlp_dim": 512, "latent_dim": 512, "num_enc_layers": 2, "num_q": 5},
    19: {"enc_dim": 1024, "mlp_dim": 1024, "latent_dim": 768, "num_enc_layers": 3, "num_q": 5},
    48: {"enc_dim": 1792, "mlp_dim": 1792, "latent_dim": 768, "num_enc_layers": 4, "num_q": 5},
    317: {"enc_dim": 4096, "mlp_dim": 4096, "latent_dim": 1376, "num_enc_layers": 5, "num_q": 8},
}
"""model_size key -> architecture keys it sets (explicit user overrides still win)."""

PRESETS: dict[str, dict[str, object]] = {
    "paper": {"steps": 4_000_000, "eval_freq": 100_000, "eval_episodes": 10, "save_every": 100_000},
    "cpu": {
        "model_size": 1,
        "batch_size": 64,
        "diffusion_steps": 6,
        "diffusion_num_samples": 64,
        "diffusion_num_elites": 8,
        "diffusion_num_pi_trajs": 4,
        "num_samples": 64,
        "num_elites": 8,
        "num_pi_trajs": 4,
        "iterations": 4,
        "steps": 20000,
        "eval_freq": 5000,
        "eval_episodes": 2,
        "save_every": 2500,
    },
}
"""preset name -> config values it sets (below explicit user overrides)."""

PRESET_CHOICES = ("auto", *PRESETS)

PRESET_SUMMARIES: dict[str, str] = {
    "auto": "cpu when the backend sees no GPU, else paper",
    "paper": "the published settings: the values of default.yaml, and the published budget "
    "(4M steps, evaluation every 100k steps over 10 episodes, a checkpoint every 100k)",
    "cpu": "a laptop-CPU first try: a 1M-parameter model and a smaller planner, evaluated often",
}
"""preset name -> what it is for (shown by `apps/train list presets`)."""
