"""Run configuration: typed sections validated by pydantic, YAML presets, ``key=value`` overrides.

A run is described by one :class:`RunConfig`. Presets live in ``configs/*.yaml`` (shipped inside the
package); ``load_config("fmnist-swav", ["optim.lr=0.3", "data.batch_size=128"])`` reads a
preset by name or path, applies dotted overrides (values parsed as YAML), and validates
everything. Unknown keys are an error that names the valid keys of that section.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    source: str = "demo"  #: a path or a source name, see `selflabel datasets`
    split: str = "train"
    image_size: int | None = None  #: resize+center-crop at decode time (folders of mixed sizes)
    test_source: str | None = None  #: optional held-out source for kNN/linear evaluation
    test_split: str = "test"
    #: fraction of the training source held out as a validation split (fixed seed 0): never
    #: trained on, and evaluated in place of ``test_source`` (every ``test_*`` figure is then a
    #: validation figure). Tune on it; report the test split at the end.
    holdout: float = Field(0.0, ge=0.0, lt=1.0)
    batch_size: int = Field(256, ge=1)
    num_workers: int = Field(0, ge=0)
    strict: bool = False  #: turn skipped bad files into errors


class AugmentConfig(_Section):
    n_global: int = Field(2, ge=1)
    global_size: int | None = None  #: None: chosen from the image size
    global_scale: tuple[float, float] = (0.14, 1.0)
    n_local: int = Field(6, ge=0)
    local_size: int | None = None
    local_scale: tuple[float, float] = (0.05, 0.14)
    color_strength: float = Field(0.5, ge=0.0)
    blur: bool = False
    flip: bool = True


class ModelConfig(_Section):
    backbone: str = "smallcnn"
    width: float = Field(1.0, gt=0)  #: channel multiplier of the backbone
    small_stem: bool = False
    convs_per_block: int = Field(1, ge=1)  #: smallcnn only: 2 gives an 8-convolution network
    #: smallcnn only: channels of its blocks before ``width`` (None: 32, 64, 128, 256)
    channels: list[int] | None = None
    hidden_dim: int = Field(512, ge=0)
    embedding_dim: int = Field(128, ge=0)
    n_prototypes: list[int] = Field(default_factory=lambda: [100])
    projection_bn: bool = True
    #: start the backbone from trained weights: a run directory, a selflabel checkpoint or a
    #: backbone state dict (torchvision, official SwAV); heads start fresh (run/warm_start.py)
    init_from: str | None = None


class SwAVConfig(_Section):
    temperature: float = Field(0.1, gt=0)
    epsilon: float = Field(0.05, gt=0)
    sinkhorn_iters: int = Field(3, ge=1)
    freeze_prototypes_iters: int = Field(100, ge=0)
    queue_length: int = Field(0, ge=0)
    queue_start_epoch: int = Field(0, ge=0)


class SeLaConfig(_Section):
    """SeLa: T linear heads of K classes, label steps at t_i = (i/(M-1))^2 of training."""

    n_heads: int = Field(1, ge=1)  #: T, heads of K classes each
    #: K; None: ``model.n_prototypes[0]`` (method sela). Method swavsela needs it: SeLa's heads
    #: there are separate from SwAV's prototypes (``model.n_prototypes``)
    n_clusters: int | None = Field(None, ge=2)
    loss_weight: float = Field(1.0, ge=0)  #: swavsela: weight of SeLa's loss beside SwAV's
    label_steps: int = Field(5, ge=2)  #: M, label steps over the whole training (first at t=0)
    lam: float = Field(25.0, gt=0)  #: the solver's inverse regularisation lambda
    tol: float = Field(1e-2, gt=0)  #: marginal-error tolerance of the solver
    max_iter: int = Field(500, ge=1)
    label_augmentations: int = Field(0, ge=0)  #: A: 0 = one un-augmented pass, else mean of A


class OfflineConfig(_Section):
    """SeLa-v2 / DeepCluster-v2: assignments once per epoch from the previous epoch's embeddings."""

    temperature: float = Field(0.1, gt=0)
    epsilon: float = Field(0.05, gt=0)  #: SeLa-v2 solver regularisation on prototype scores
    tol: float = Field(1e-2, gt=0)
    max_iter: int = Field(500, ge=1)
    kmeans_iters: int = Field(10, ge=1)  #: DeepCluster-v2 spherical k-means iterations
    bank_crops: int = Field(2, ge=1)  #: global crops kept in the memory bank (heads rotate)
    freeze_prototypes_iters: int = Field(0, ge=0)  #: SeLa-v2 only


class OptimConfig(_Section):
    name: Literal["sgd", "lars", "adamw"] = "sgd"
    lr: float = Field(0.3, gt=0)  #: base learning rate for `batch_size` 256 (scaled linearly)
    final_lr: float = Field(0.0003, ge=0)
    weight_decay: float = Field(1e-6, ge=0)
    momentum: float = Field(0.9, ge=0)
    warmup_epochs: float = Field(1.0, ge=0)
    grad_clip: float | None = None
    scale_lr_with_batch: bool = True


class TrainConfig(_Section):
    epochs: int = Field(10, ge=1)
    max_minutes: float | None = None
    device: str = "auto"  #: auto | cpu | cuda | cuda:N
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    channels_last: bool = True  #: NHWC memory format for conv backbones (CPU and GPU)
    sync_bn: bool = True
    threads: int | None = None  #: torch CPU threads (None: torch's default)
    keep_checkpoint_every: int | None = Field(None, ge=1)  #: also keep checkpoint_epochN.pt
    eval_every: int = Field(0, ge=0)  #: epochs between in-training evaluations (0: end only)
    log_every: int = Field(20, ge=1)


class EvalConfig(_Section):
    n_clusters: int | None = None  #: k of the clustering benchmark (None: number of classes)
    overcluster: float = Field(1.0, ge=1.0)
    pca_dim: int | None = None
    #: embed the features with UMAP into this many dimensions before k-means (clustering
    #: benchmark and k-means ``labels.csv``; one embedding per seed; needs umap-learn; None: off)
    umap_dim: int | None = Field(None, ge=1)
    umap_neighbors: int = Field(30, ge=2)  #: UMAP's n_neighbors (min_dist is 0)
    #: refine every k-means solution into equal-size clusters (SeLa's equipartition as the
    #: assignment step; clustering benchmark and k-means ``labels.csv``): for balanced classes
    kmeans_balanced: bool = False
    #: where k-means starts (clustering benchmark of the features and k-means ``labels.csv``):
    #: ``random`` (faiss: k random points per restart) or ``kmeans++``, ``seeds`` × best of
    #: ``kmeans_restarts``; ``prototypes``: one run from the main head's prototypes (SwAV-style
    #: heads on the backbone features, ``model.embedding_dim: 0``, k prototypes; not with UMAP).
    #: The raw-pixel baseline has no prototypes and keeps ``random``.
    kmeans_init: Literal["random", "kmeans++", "prototypes"] = "random"
    seeds: int = Field(3, ge=1)
    #: k-means runs per seed; the one with the lowest k-means objective is kept (no labels used)
    kmeans_restarts: int = Field(10, ge=1)
    #: un-augmented images (features, heads, SeLa's label pass) resized to this size, centre-cropped
    #: by ``crop_fraction`` (None: native size); the Fashion-MNIST presets use the global crop size
    image_size: int | None = Field(None, ge=1)
    crop_fraction: float = Field(1.0, gt=0, le=1)
    #: test-time views: the evaluation's features (and head probabilities) are averaged over
    #: ``image_size`` and these extra sizes, each also mirrored when ``tta_flip`` (never training)
    tta_sizes: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)
    tta_flip: bool = False
    #: what the views feed: ``all`` figures, or only the ``probes`` (kNN, linear probe) while
    #: k-means, the head and ``labels.csv`` keep the single ``image_size`` view
    tta_scope: Literal["all", "probes"] = "all"
    #: centre the L2-normalised features on their mean and L2-normalise again (CL2N) before the
    #: cosine geometry: for ``knn`` (on the training images' mean), or for ``all`` of kNN, the
    #: clustering benchmark and k-means ``labels.csv`` (each on the clustered images' own mean)
    center: Literal["none", "knn", "all"] = "none"
    #: recompute the BatchNorm statistics of a copy of the network on this many training images
    #: in the evaluation's views before any figure ("precise BN"; 0: the trained statistics)
    bn_recalibrate: int = Field(0, ge=0)
    knn_k: int = Field(20, ge=1)
    knn_temperature: float = Field(0.07, gt=0)
    gallery_per_cluster: int = Field(8, ge=0)
    batch_size: int = Field(512, ge=1)


class RunConfig(_Section):
    method: Literal["swav", "sela", "swavsela", "selav2", "deepclusterv2", "supervised"] = "swav"
    seed: int = 0
    out: str | None = None  #: run directory (None: runs/<method>-<source>-<time>)
    data: DataConfig = Field(default_factory=DataConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    swav: SwAVConfig = Field(default_factory=SwAVConfig)
    sela: SeLaConfig = Field(default_factory=SeLaConfig)
    offline: OfflineConfig = Field(default_factory=OfflineConfig)
    labels: str | None = None  #: supervised: a labels .npy/.csv (e.g. from `selflabel label`)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)


class ConfigError(ValueError):
    """A configuration problem, with a message that says how to fix it."""


#: former preset names that still load (``fmnist`` became ``fmnist-swav`` beside ``fmnist-sela``)
PRESET_ALIASES = {"fmnist": "fmnist-swav"}


def preset_names() -> list[str]:
    """Names of the presets shipped in ``configs/``."""
    root = resources.files("selflabel") / "configs"
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def read_preset(name_or_path: str | Path) -> dict[str, Any]:
    """The raw mapping of a preset name (``configs/NAME.yaml``) or a YAML file path."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        text = path.read_text()
    else:
        name = PRESET_ALIASES.get(str(name_or_path), str(name_or_path))
        resource = resources.files("selflabel") / "configs" / f"{name}.yaml"
        if not resource.is_file():
            raise ConfigError(
                f"unknown preset {name_or_path!r}; presets: {', '.join(preset_names())} "
                "(or pass a path to a .yaml file)"
            )
        text = resource.read_text()
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name_or_path}: a config must be a mapping, got {type(data).__name__}")
    return data


def apply_override(data: dict[str, Any], override: str) -> None:
    """Apply one ``dotted.key=value`` override (value parsed as YAML) to a raw config mapping."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like key=value, e.g. optim.lr=0.3")
    key, raw = override.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {override!r} has an empty key")
    _check_key(parts)
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {key}: {part} is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None


def _check_key(parts: list[str]) -> None:
    model: type[BaseModel] = RunConfig
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            where = ".".join(parts[:i]) or "the top level"
            raise ConfigError(
                f"unknown config key {'.'.join(parts)!r}: valid keys at {where} are "
                f"{', '.join(sorted(fields))}"
            )
        annotation = fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif i < len(parts) - 1:
            raise ConfigError(f"{'.'.join(parts[: i + 1])} is a value, not a section")


def build_config(data: dict[str, Any]) -> RunConfig:
    """Validate a raw mapping into a :class:`RunConfig`, with readable errors."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                section = ".".join(str(p) for p in err["loc"][:-1])
                model: type[BaseModel] = RunConfig
                for part in err["loc"][:-1]:
                    ann = model.model_fields[str(part)].annotation
                    if isinstance(ann, type) and issubclass(ann, BaseModel):
                        model = ann
                valid = ", ".join(sorted(model.model_fields))
                where = section or "top level"
                lines.append(f"unknown config key {loc!r}; valid keys in {where}: {valid}")
            else:
                lines.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def load_config(preset: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a preset (default ``demo``), apply ``key=value`` overrides and validate."""
    data = read_preset(preset or "demo")
    for override in overrides or []:
        apply_override(data, override)
    return build_config(data)


def dump_config(config: RunConfig) -> str:
    """The resolved configuration as YAML (saved as ``config.yaml`` in every run directory)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
