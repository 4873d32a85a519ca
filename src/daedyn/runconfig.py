"""Run configurations: one frozen dataclass per model family, built and validated once.

A training job receives its experiment's values merged with its run's own entry (the rule's
params); :meth:`RunConfig.from_params` turns that dict into a :class:`LinearConfig`,
:class:`NonlinearConfig`, :class:`DepthConfig` or :class:`MaskingConfig`. The object then travels unchanged to the engine, the checkpoint
fingerprint and the run file's coordinates (:meth:`RunConfig.coords`).

Defaults live in one place, the config schema shipped with the package
(``daedyn/config.schema.yaml``, the same file the workflow validates against): a notebook call
``LinearConfig.make(hidden=16, lr=0.01, epochs=200, eps=0.5)`` takes every value it does not
name from the schema's defaults. Every field is checked against the schema's type, enum and bounds
once, in ``__post_init__``, with a message that names the field (NaN and infinity included).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any, ClassVar, Mapping

import yaml

__all__ = ["DepthConfig", "LinearConfig", "LrNormalisedConfig", "MaskingConfig", "NonlinearConfig", "RunConfig",
           "SampledConfig", "TrainingConfig", "schema", "schema_defaults"]

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


@functools.cache
def schema() -> dict:
    """The config schema (JSON Schema as YAML)."""
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _resolve(prop: dict) -> dict:
    """A schema property with its local ``$ref`` merged in."""
    if "$ref" in prop:
        target = schema()
        for part in prop["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
    return prop


def _properties(kind: str) -> dict[str, dict]:
    """Per-run properties of an experiment kind: experiment level, overridden by a run's entry.

    A key allowed at both levels keeps the experiment level's default unless the run's entry declares
    its own, so the two are merged, not replaced (kinds whose runs the job derives from the
    experiment have no ``runs`` entry)."""
    exp = schema()["$defs"][kind]["properties"]
    run = exp["runs"]["additionalProperties"]["properties"] if "runs" in exp else {}
    return {k: _resolve({**_resolve(exp.get(k, {})), **_resolve(run.get(k, {}))}) for k in {**exp, **run}}


def schema_defaults(kind: str) -> dict[str, Any]:
    """Schema defaults of one experiment kind ("linear_experiment", "nonlinear_experiment", ...).

    ``seed`` defaults to the first entry of the default ``seeds`` (a list of run seeds; a kind
    whose ``seeds`` is a count keeps it).
    """
    props = _properties(kind)
    out = {k: v["default"] for k, v in props.items() if "default" in v}
    if isinstance(out.get("seeds"), list):
        out["seed"] = out.pop("seeds")[0]
    return out


def _seed_property(seeds: dict) -> dict:
    """The schema of one seed: the items of ``seeds`` (a list of seeds, or a count)."""
    for alternative in [seeds, *seeds.get("oneOf", [])]:
        if "items" in alternative:
            return _resolve(alternative["items"])
    raise KeyError("the schema's seeds property has no items")


def _check(where: str, name: str, value: Any, prop: dict) -> Any:
    """``value`` checked against its schema property; returns it normalised (int → float)."""
    types = prop.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if value is None:
        if "null" in types:
            return None
        raise ValueError(f"{where}: {name} is required (got null)")
    if "enum" in prop:
        if value not in prop["enum"]:
            raise ValueError(f"{where}: {name} must be one of {prop['enum']}, got {value!r}")
        return value
    if "array" in types:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: {name} must be a list, got {value!r}")
        if len(value) < prop.get("minItems", 0):
            raise ValueError(f"{where}: {name} needs at least {prop['minItems']} entries, got {list(value)}")
        items = _resolve(prop.get("items", {}))
        return tuple(_check(where, f"{name}[{i}]", v, items) for i, v in enumerate(value))
    if "boolean" in types:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: {name} must be true or false, got {value!r}")
        return value
    if "integer" in types:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: {name} must be an integer, got {value!r}")
    elif "number" in types:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: {name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{where}: {name} must be a finite number, got {value!r}")
        value = float(value)
    elif "string" in types:
        if not isinstance(value, str):
            raise ValueError(f"{where}: {name} must be a string, got {value!r}")
        return value
    if "minimum" in prop and value < prop["minimum"]:
        raise ValueError(f"{where}: {name} must be >= {prop['minimum']}, got {value!r}")
    if "exclusiveMinimum" in prop and value <= prop["exclusiveMinimum"]:
        raise ValueError(f"{where}: {name} must be > {prop['exclusiveMinimum']}, got {value!r}")
    if "maximum" in prop and value > prop["maximum"]:
        raise ValueError(f"{where}: {name} must be <= {prop['maximum']}, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Base of the run configurations: construction from params or keywords, validation, export.

    ``experiment``, ``run`` and ``dataset`` identify a run; every field a subclass adds is a key of its
    kind's schema entry.
    """

    KIND: ClassVar[str]
    #: identification, not hyperparameters: no schema entry, so no validation beyond the type
    IDENTITY: ClassVar[tuple[str, ...]] = ("experiment", "run", "dataset")
    #: may be None in a notebook call, where the data say it (the engines fill it in)
    OPTIONAL: ClassVar[tuple[str, ...]] = ("n_samples",)
    #: long_name and units of the fields stored as coordinates of a run file
    META: ClassVar[dict[str, tuple[str, str]]] = {}

    # what every run has: its identity (each subclass adds its own settings)
    experiment: str
    run: str
    dataset: str

    def __post_init__(self):
        props = _properties(self.KIND)
        where = f"{self.family} run {self.label}"
        for f in dataclasses.fields(self):
            if f.name in self.IDENTITY:
                if not isinstance(getattr(self, f.name), str):
                    raise ValueError(f"{where}: {f.name} must be a string")
                continue
            if f.name in self.OPTIONAL and getattr(self, f.name) is None:
                continue
            prop = _seed_property(props["seeds"]) if f.name == "seed" else props[f.name]
            object.__setattr__(self, f.name, _check(where, f.name, getattr(self, f.name), prop))

    @property
    def family(self) -> str:
        return self.KIND.removesuffix("_experiment")

    @property
    def label(self) -> str:
        """experiment/run (or "(notebook)" outside the workflow)."""
        return f"{self.experiment}/{self.run}" if self.experiment else "(notebook)"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]):
        """The configuration of one training job from its params (experiment values merged with
        the run's entry, schema defaults already applied by the workflow). Keys that are not run
        settings are an error, so a params function cannot drift from this class silently."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown params {unknown}; known: {sorted(names)}")
        missing = sorted(names - set(params) - set(cls.IDENTITY))
        if missing:
            raise ValueError(f"{cls.__name__}: params lack {missing}")
        return cls(**{k: params.get(k, "") for k in names})

    @classmethod
    def make(cls, **values):
        """A configuration for a notebook call: every value not given comes from the schema."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise TypeError(f"{cls.__name__}: unknown settings {unknown}; known: {sorted(names)}")
        defaults = {k: v for k, v in schema_defaults(cls.KIND).items() if k in names}
        merged = {**dict.fromkeys(cls.IDENTITY, ""), **dict.fromkeys(cls.OPTIONAL), **defaults, **values}
        missing = sorted(names - set(merged))
        if missing:
            raise TypeError(f"{cls.__name__}: {missing} must be given (the schema has no default)")
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def coords(self) -> dict[str, tuple[Any, dict[str, str]]]:
        """The hyperparameters stored as coordinates of the run file: name → (value, attrs)."""
        out = {}
        for name, (long_name, units) in self.META.items():
            value = getattr(self, name)
            if isinstance(value, bool):
                value = int(value)
            out[name] = (value, {"long_name": long_name, **({"units": units} if units else {})})
        return out


_SHARED_META = {
    "lr": ("learning rate eta", "1"),
    "init_std": ("initial weight standard deviation: of the i.i.d. Gaussian initial weights", "1"),
    "n_samples": ("number of training samples N", "1"),
    "dtype": ("floating-point precision of training", ""),
}


@dataclasses.dataclass(frozen=True)
class TrainingConfig(RunConfig):
    """What the paper's model families (linear, nonlinear) share: one training run of one seed."""

    n_samples: int | None
    lr: float
    epochs: int
    init_std: float
    seed: int
    log_every: int
    dtype: str
    device: str
    batch_size: int | None
    shuffle: bool


@dataclasses.dataclass(frozen=True)
class LinearConfig(TrainingConfig):
    """One run of a two-layer linear AE / DAE / WDAE (fields: see the schema's linear_experiment)."""

    KIND: ClassVar[str] = "linear_experiment"
    META: ClassVar[dict[str, tuple[str, str]]] = {
        "engine": ("training engine: exact (in the eigenbasis), datapass (data pass) or sampled (noise drawn)", ""),
        "eps": ("input noise variance epsilon", "1"),
        "gamma": ("weight decay gamma", "1"),
        "hidden_units": ("number of hidden units H", "1"),
        "allow_unstable": ("unstable on purpose: 1 when trained although lr >= eta_max", "1"),
        "heldout": ("held-out dataset: of the test errors", ""),
        **_SHARED_META,
    }

    engine: str
    hidden: int
    eps: float
    gamma: float
    allow_unstable: bool
    heldout: str | None        # held-out dataset whose moment C the tracker evaluates (None: no test errors)
    sigma2_test: tuple[float, ...]  # test-noise variances of the recorded held-out denoising errors

    @property
    def hidden_units(self) -> int:  # "hidden" is the weights' dimension in a run file
        return self.hidden


@dataclasses.dataclass(frozen=True)
class NonlinearConfig(TrainingConfig):
    """One run of a D→H→D ReLU/tanh network (fields: see the schema's nonlinear_experiment)."""

    KIND: ClassVar[str] = "nonlinear_experiment"
    META: ClassVar[dict[str, tuple[str, str]]] = {
        "activation": ("hidden-layer activation", ""),
        "noise_std": ("input noise standard deviation: sigma (variance sigma^2)", "1"),
        "weight_decay": ("weight decay: torch SGD weight_decay wd (adds wd*W to the gradient)", "1"),
        "hidden_units": ("number of hidden units H", "1"),
        "k_modes": ("number of measured top eigen-directions", "1"),
        **_SHARED_META,
    }

    hidden: int
    activation: str
    noise_std: float
    weight_decay: float
    k_modes: int

    @property
    def hidden_units(self) -> int:
        return self.hidden


@dataclasses.dataclass(frozen=True)
class DepthConfig(TrainingConfig):
    """One run of a depth-L linear AE / DAE / WDAE (fields: see the schema's depth_experiment).

    ``match_eps`` > 0 asks for the weight decay γ_L matched to a DAE of that noise variance at
    the eigenvalue of mode ``match_mode`` (:func:`daedyn.depth.matched_decay`); the engine then
    runs, stores and reports the configuration with ``gamma`` = γ_L.
    """

    KIND: ClassVar[str] = "depth_experiment"
    META: ClassVar[dict[str, tuple[str, str]]] = {
        "depth": ("number of weight matrices L", "1"),
        "layer_widths": ("hidden widths H_1,...,H_(L-1)", ""),
        "init": ("initialisation: aligned (every layer's mode weight w0) or random (i.i.d. Gaussian)", ""),
        "w0": ("aligned initial layer weight: every layer's weight of each mode (u_i = w0^L)", "1"),
        "eps": ("input noise variance epsilon", "1"),
        "gamma": ("weight decay gamma: on every layer", "1"),
        "match_eps": ("matched noise variance: gamma is gamma_L matched to a DAE of this noise variance "
                      "(0: gamma as given)", "1"),
        "match_mode": ("matched mode: the mode whose eigenvalue gamma_L is matched at", "1"),
        "allow_unstable": ("unstable on purpose: 1 when trained although lr >= eta_max", "1"),
        **_SHARED_META,
    }

    depth: int
    hidden: int
    widths: tuple[int, ...] | None
    init: str
    w0: float
    eps: float
    gamma: float
    match_eps: float
    match_mode: int
    allow_unstable: bool

    def __post_init__(self):
        super().__post_init__()
        if self.widths is not None and len(self.widths) != self.depth - 1:
            raise ValueError(f"{self.family} run {self.label}: widths needs depth - 1 = {self.depth - 1} "
                             f"entries (H_1 ... H_{self.depth - 1}), got {list(self.widths)}")
        if self.match_eps > 0 and self.eps > 0:
            raise ValueError(f"{self.family} run {self.label}: match_eps (a WDAE's matched decay) and eps "
                             "(a DAE's noise) exclude each other; set one of them to 0")

    @property
    def hidden_widths(self) -> list[int]:
        """H_1 ... H_(L-1): ``widths``, or ``hidden`` for every hidden layer."""
        return list(self.widths) if self.widths is not None else [self.hidden] * (self.depth - 1)

    @property
    def layer_widths(self) -> str:
        return ",".join(map(str, self.hidden_widths))


@dataclasses.dataclass(frozen=True)
class MaskingConfig(TrainingConfig):
    """One run of a two-layer linear DAE with masking (dropout) noise (fields: the schema's
    masking_experiment). ``noise`` says what the input is corrupted with: Bernoulli masks
    ("masking"), or, for comparison (marginal engine only), Gaussian noise of per-mode variance
    ε_i = ((1−q)/q) v_iᵀ diag(Σ) v_i ("per_mode") or of one matched variance ((1−q)/q) mean(diag Σ)
    ("gaussian")."""

    KIND: ClassVar[str] = "masking_experiment"
    META: ClassVar[dict[str, tuple[str, str]]] = {
        "q": ("keep probability q: of each input entry", "1"),
        "form": ("masking form: unscaled (m*x) or inverted (m*x/q)", ""),
        "noise": ("input corruption: masking, or per_mode or gaussian for the Gaussian comparisons", ""),
        "engine": ("training engine: marginal (mask-averaged loss in the eigenbasis) or sampled (masks drawn)", ""),
        "gamma": ("weight decay gamma", "1"),
        "hidden_units": ("number of hidden units H", "1"),
        "allow_unstable": ("unstable on purpose: 1 when trained although lr >= eta_max", "1"),
        **_SHARED_META,
    }

    engine: str
    hidden: int
    q: float
    form: str
    noise: str
    gamma: float
    allow_unstable: bool

    def __post_init__(self):
        super().__post_init__()
        if self.engine == "sampled" and self.noise != "masking":
            raise ValueError(f"{self.family} run {self.label}: the sampled engine draws masks; noise "
                             f"{self.noise!r} needs engine: marginal")

    @property
    def hidden_units(self) -> int:
        return self.hidden


@dataclasses.dataclass(frozen=True)
class LrNormalisedConfig(RunConfig):
    """One run of a learning-rate-normalised DAE/WDAE comparison (fields: the schema's
    lr_normalised_experiment).

    ``run`` names one planned run (:func:`daedyn.lr_normalised.plan_lr_normalised`): ``dae_f{f}``,
    ``wdae_k{k}_f{f}`` (γ of equal plateau on mode k) or ``wdae_g{γ}_f{f}`` (free γ). Its learning
    rate, γ and length follow from the spectrum (:func:`daedyn.lr_normalised.lr_normalised_linear_config`),
    so a training job's params list only the grid values of its own run.
    """

    KIND: ClassVar[str] = "lr_normalised_experiment"

    n_samples: int | None
    hidden: int
    eps: float
    fractions: tuple[float, ...]
    matched_modes: tuple[int, ...]
    gammas: tuple[float, ...]
    modes: tuple[int, ...]
    epoch_budget: int
    init_std: float
    seed: int
    log_every: int
    dtype: str
    device: str


@dataclasses.dataclass(frozen=True)
class SampledConfig(RunConfig):
    """One part of a sampled-vs-marginalised noise experiment (fields: the schema's sampled_experiment).

    ``run`` names the part: ``traj_full`` / ``traj_b{B}`` (mean trajectories at one batch size,
    ``batches`` = [B]), ``variance`` (stationary variance against η) or ``fixed_copy``; a part's
    params hold only the keys it uses (:attr:`PARTS`), the others are None. The aggregation sees
    them all.
    """

    KIND: ClassVar[str] = "sampled_experiment"
    #: the keys each part uses beyond the common ones
    PARTS: ClassVar[dict[str, tuple[str, ...]]] = {
        "traj": ("fraction", "steps", "records", "batches", "burn_in"),
        "variance": ("var_fractions", "var_batch", "burn_in", "window"),
        "fixed_copy": ("fraction", "steps", "copies", "trained_copies"),
    }
    OPTIONAL: ClassVar[tuple[str, ...]] = ("n_samples", "dim") + tuple(sorted({k for v in PARTS.values() for k in v}))

    n_samples: int | None
    dim: int | None
    hidden: int
    eps: float
    modes: tuple[int, ...]
    seeds: int
    init_std: float
    init_seed: int
    dtype: str
    device: str
    fraction: float | None
    steps: int | None
    records: int | None
    batches: tuple[int | None, ...] | None
    var_fractions: tuple[float, ...] | None
    var_batch: int | None
    burn_in: float | None
    window: float | None
    copies: int | None
    trained_copies: int | None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]):
        """A part's configuration: the keys of the other parts are absent from its params (None)."""
        unused = {k for v in cls.PARTS.values() for k in v} - set(params)
        return super().from_params({**dict.fromkeys(unused), **params})

    def need(self, *names: str) -> None:
        """Stop with a clear message when a part runs without one of its keys."""
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise ValueError(f"{self.family} run {self.label}: needs {missing} (not in its params)")
