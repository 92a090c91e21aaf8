"""The frozen run configuration. Values live in default.yaml; this file is the schema."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Config:
    """Every key of default.yaml (see its comments), plus facts derived from the task registry.

    Built once by `load_config` and never mutated; derived fields are filled there.
    """

    # environment
    task: str
    obs: str
    obs_shift: str
    episodic: bool | None
    # run
    mode: str
    data_dir: str | None
    checkpoint: str | None
    source_task: str | None
    format: str
    preset: str
    device: str
    compile: bool
    compile_mode: str
    precision: str
    seed: int
    steps: int
    seed_steps: int | None
    num_envs: int
    updates_per_step: int
    run_dir: str | None
    resume: bool
    resume_from: str | None
    allow_backend_switch: bool
    eval_freq: int
    eval_episodes: int
    eval_tasks: str | None
    eval_workers: int
    video_every: int
    log_freq: int
    save_every: int
    keep_checkpoints: int
    # experiment tracking
    wandb: bool
    wandb_project: str
    wandb_entity: str | None
    wandb_group: str | None
    wandb_mode: str | None
    # world-model training
    batch_size: int
    data_parallel_devices: int
    buffer_size: int
    replay_sampling: str
    lr: float
    enc_lr_scale: float
    grad_clip_norm: float
    rho: float
    tau: float
    consistency_coef: float
    reward_coef: float
    value_coef: float
    termination_coef: float
    discount_denom: float
    discount_min: float
    discount_max: float
    # energy head
    energy_coef: float
    energy_eta: float
    energy_clip: float
    energy_momentum: float
    energy_neg_noise: float
    energy_pairing: str
    # score network
    use_score_network: bool
    score_planning: str
    score_loss_coef: float
    score_only_inference: bool
    diffusion_num_samples_mf: int
    diffusion_time_embed_dim: int
    # planning
    planner: str
    horizon: int
    diffusion_steps: int
    diffusion_beta0: float
    diffusion_betaT: float
    diffusion_num_samples: int
    diffusion_num_elites: int
    diffusion_num_pi_trajs: int
    diffusion_temperature: float
    diffusion_action_noise: float
    iterations: int
    num_samples: int
    num_elites: int
    num_pi_trajs: int
    min_std: float
    max_std: float
    temperature: float
    # policy prior
    log_std_min: float
    log_std_max: float
    entropy_coef: float
    # regression
    num_bins: int
    vmin: float
    vmax: float
    # architecture
    model_size: int
    num_enc_layers: int
    enc_dim: int
    mlp_dim: int
    latent_dim: int
    num_q: int
    num_channels: int
    task_dim: int
    mt30_dims: str
    dropout: float
    simnorm_dim: int

    # --- derived by load_config (not in default.yaml) ---
    backend: str = "none"
    """Backend the run was configured for: torch | jax | none."""
    tasks: tuple[str, ...] = ()
    """Task names; one for single-task runs, the task set's order for mt30/mt80."""
    multitask: bool = False
    obs_shape: tuple[int, ...] = ()
    """Observation shape fed to the encoder: (O,) padded to the set's max, or (9, 64, 64)."""
    obs_dims: tuple[int, ...] = ()
    action_dim: int = 0
    """Action width A of the model (max over tasks)."""
    action_dims: tuple[int, ...] = ()
    episode_lengths: tuple[int, ...] = ()
    discounts: tuple[float, ...] = ()
    """Discount per task id, from the discount heuristic."""
    bin_size: float = 0.0
    notes: tuple[str, ...] = field(default=())
    """Human-readable lines about choices load_config made (preset, device)."""

    @property
    def episode_length(self) -> int:
        """Longest episode over the run's tasks, in agent steps."""
        return max(self.episode_lengths)

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def score_net_plans(self) -> bool:
        """The diffusion planner follows the score network instead of the Monte-Carlo score
        (use_score_network with score_planning=network; docs/method.md#diffusion-planner)."""
        return self.use_score_network and self.score_planning == "network"

    @property
    def evaluated_tasks(self) -> tuple[str, ...]:
        """The tasks an evaluation covers: eval_tasks (space-separated), else the fine-tuned
        task (mode=finetune) or every task."""
        if self.eval_tasks:
            return tuple(self.eval_tasks.split())
        return (self.task,) if self.mode == "finetune" else self.tasks

    @property
    def shifts_when_acting(self) -> bool:
        """Acting encodes a randomly shifted observation, as the published encoder does on every
        call (obs=rgb with obs_shift=always; docs/method.md#augmentation)."""
        return self.obs == "rgb" and self.obs_shift == "always"
