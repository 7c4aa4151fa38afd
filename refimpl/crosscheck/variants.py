"""Convention variants: a small plain-numpy GD that departs from
docs/model.md §3 in the ways framework code often does.

Kept apart from the exact kernels on purpose: explain mode and
``crosscheck --convention`` replay a file under these variants and compare.
With ``Convention()`` the GD below is the formula of docs/model.md §3.4; each
field of :class:`Convention` changes one thing in it, and any combination of
fields may be set at once. Only weights, the bias and the data loss are
produced: the variants change the dynamics, and the dynamics are what is
tested.
"""

from __future__ import annotations

import json
from collections import namedtuple
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..errors import UsageError
from .compare import INPUT_KEYS
from .dynamics import GramSpace, WeightSpace, choose_space, outputs, replay

__all__ = [
    "Convention",
    "VARIANTS",
    "VariantRun",
    "variant_train",
    "variant_arrays",
    "variant_loss_gradient",
    "parse_convention",
    "parse_schedule",
    "schedule_text",
]


@dataclass(frozen=True)
class Convention:
    """Departures from docs/model.md §3 that framework code often makes; any
    combination of fields may be set.

    Attributes
    ----------
    filter_sum : bool
        F_j = sum_r sum_p sigma(.) (no 1/m over filters).
    patch_mean : bool
        F_j = (1/m) sum_r (1/P) sum_p sigma(.) (mean instead of sum over patches).
    bias : bool
        sigma(<w_{j,r}, x> + b_{j,r}) with a trainable scalar bias per filter,
        trained by the same step, weight decay included; it starts from the
        file's ``b0`` when the file has one, else from 0.
    lr_scale : float
        The step is c * eta.
    relu_prime_zero : float
        sigma'(0) (the reference has 0).
    dtype : str
        "float64" or "float32" arithmetic.
    loss_with_decay : bool
        The stored loss includes the penalty (lambda/2) |W|^2 (all filters);
        a reporting convention, the weights are the reference's.
    swap_classes : bool
        f = F_{-1} - F_{+1}: axis 0 index 0 holds the filters of class -1.
    momentum : float
        Heavy-ball momentum mu of ``torch.optim.SGD`` (0: plain GD).
    lr_schedule : tuple of (int, float)
        A step-size schedule: from step ``start`` on, the step is
        ``factor`` * lr_scale * eta ((start, factor) pairs, the first start 0).
    decay_frozen : bool
        Weight decay also shrinks the frozen filters (an optimizer's decay on
        parameters whose gradient was masked).
    snapshot_offset : int
        The file's snapshot at step s holds the weights after s + offset
        steps (within 0..T): +1 when W is recorded after the update.
    nesterov : bool
        With ``momentum``: Nesterov's step of ``torch.optim.SGD``
        (w <- w - c eta (d + mu buf)).
    loss_sum : bool
        The loss is summed over the inputs instead of averaged
        (``reduction="sum"``): the stored loss and its gradient are n times
        the reference's.
    """

    filter_sum: bool = False
    patch_mean: bool = False
    bias: bool = False
    lr_scale: float = 1.0
    relu_prime_zero: float = 0.0
    dtype: str = "float64"
    loss_with_decay: bool = False
    swap_classes: bool = False
    momentum: float = 0.0
    lr_schedule: tuple = ()
    decay_frozen: bool = False
    snapshot_offset: int = 0
    loss_sum: bool = False
    nesterov: bool = False

    def names(self):
        """The names (keys of :data:`VARIANTS`) of the departures, in that order."""
        out = [name for name in ("filter_sum", "patch_mean", "bias") if getattr(self, name)]
        if self.lr_scale != 1.0:
            out.append("lr_scale")
        if self.relu_prime_zero != 0.0:
            out.append(
                "relu_prime_1"
                if self.relu_prime_zero == 1.0
                else "relu_prime_half"
                if self.relu_prime_zero == 0.5
                else "relu_prime"
            )
        if self.dtype != "float64":
            out.append(self.dtype)
        if self.loss_with_decay:
            out.append("loss_with_decay")
        flags = ("loss_sum", "swap_classes", "momentum", "nesterov", "lr_schedule")
        flags += ("decay_frozen",)
        out += [name for name in flags if getattr(self, name)]
        if self.snapshot_offset:
            out.append(f"snapshot_offset{self.snapshot_offset:+d}")
        return out

    def spec(self):
        """The ``--convention`` text that gives this convention back
        (``parse_convention(conv.spec()) == conv``), e.g.
        ``filter_sum,momentum=0.9,lr_schedule=0:1.0/50:0.5``."""
        parts = [n for n in ("filter_sum", "patch_mean", "bias") if getattr(self, n)]
        if self.lr_scale != 1.0:
            parts.append(f"lr_scale={self.lr_scale!r}")
        if self.relu_prime_zero != 0.0:
            parts.append(f"relu_prime={self.relu_prime_zero!r}")
        if self.dtype != "float64":
            parts.append(self.dtype)
        flags = ("loss_with_decay", "loss_sum", "swap_classes", "decay_frozen")
        parts += [n for n in flags if getattr(self, n)]
        if self.momentum:
            parts.append(f"momentum={self.momentum!r}")
        if self.nesterov:
            parts.append("nesterov")
        if self.lr_schedule:
            parts.append("lr_schedule=" + "/".join(f"{a}:{b!r}" for a, b in self.lr_schedule))
        if self.snapshot_offset:
            parts.append(f"snapshot_offset{self.snapshot_offset:+d}")
        return ",".join(parts) or "reference"

    def label(self):
        """Short name: the departures joined by ``+``, or ``reference``."""
        return "+".join(self.names()) or "reference"

    def describe(self, b0_from_file=False):
        parts = []
        if self.filter_sum:
            parts.append("sum instead of 1/m over filters")
        if self.patch_mean:
            parts.append("mean instead of sum over patches")
        if self.bias:
            parts.append(
                "a trainable bias per filter ("
                + ("from the file's b0" if b0_from_file else "zero init")
                + ", same step and decay)"
            )
        if self.lr_scale != 1.0:
            parts.append(f"learning rate x {self.lr_scale:.12g}")
        if self.relu_prime_zero != 0.0:
            parts.append(f"ReLU'(0) = {self.relu_prime_zero:g}")
        if self.dtype != "float64":
            parts.append(f"{self.dtype} arithmetic")
        if self.loss_with_decay:
            parts.append("the stored loss includes (lambda/2)|W|^2")
        if self.loss_sum:
            parts.append("the loss summed over the inputs, not averaged (reduction='sum')")
        if self.swap_classes:
            parts.append("the classes swapped (axis 0 index 0 holds class -1)")
        if self.momentum:
            kind = "Nesterov" if self.nesterov else "heavy ball"
            parts.append(f"momentum {self.momentum:.12g} (torch.optim.SGD's {kind})")
        if self.lr_schedule:
            parts.append(f"a step-size schedule: {schedule_text(self.lr_schedule)}")
        if self.decay_frozen:
            parts.append("weight decay applied to the frozen filters too")
        if self.snapshot_offset:
            parts.append(
                f"snapshot at step s holds W after s {self.snapshot_offset:+d} steps"
                + (" (recorded after the update)" if self.snapshot_offset > 0 else "")
            )
        return "; ".join(parts) or "reference conventions (docs/model.md §3)"

    def __or__(self, other):
        """The union of two sets of departures (``other`` wins on lr_scale,
        relu_prime_zero and dtype where it departs)."""
        fields = asdict(other)
        base = Convention()
        return replace(self, **{k: v for k, v in fields.items() if v != getattr(base, k)})


# The variants explain mode combines; None: a value estimated from the file
# (lr_scale, momentum, lr_schedule). The snapshot offsets need no replay of
# their own: explain mode judges them on every candidate's replay.
VARIANTS = {
    "filter_sum": Convention(filter_sum=True),
    "patch_mean": Convention(patch_mean=True),
    "bias": Convention(bias=True),
    "lr_scale": None,
    "relu_prime_1": Convention(relu_prime_zero=1.0),
    "relu_prime_half": Convention(relu_prime_zero=0.5),
    "float32": Convention(dtype="float32"),
    "loss_with_decay": Convention(loss_with_decay=True),
    "loss_sum": Convention(loss_sum=True),
    "swap_classes": Convention(swap_classes=True),
    "momentum": None,
    "lr_schedule": None,
    "nesterov": Convention(nesterov=True),
    "decay_frozen": Convention(decay_frozen=True),
    "snapshot_offset+1": Convention(snapshot_offset=1),
    "snapshot_offset-1": Convention(snapshot_offset=-1),
}


def _positive(text):
    value = float(text)
    if not (value > 0 and np.isfinite(value)):
        raise ValueError
    return value


def _momentum(text):
    value = float(text)
    if not 0 <= value < 1:
        raise ValueError
    return value


def parse_schedule(text):
    """``"0:1/50:0.1"`` -> ((0, 1.0), (50, 0.1)): from step 0 the step is
    1 x eta, from step 50 on 0.1 x eta (starts increasing, the first 0)."""
    pairs = [item.split(":") for item in text.split("/")]
    out = tuple((int(a), _positive(b)) for a, b in pairs)
    starts = [a for a, _ in out]
    if not out or starts[0] != 0 or any(np.diff(starts) <= 0):
        raise ValueError
    return out


def schedule_text(schedule, shown=6):
    """((0, 1.0), (50, 0.1)) -> "steps 0-49: 1 x eta, from step 50: 0.1 x eta";
    a schedule of more than ``shown`` segments by its first and last ones,
    one that changes by a constant ratio every step as exponential.

    Parameters
    ----------
    schedule : sequence of (int, float)
        The segments: the first step of each and its factor on eta.
    shown : int, optional
        The most segments written out.

    Returns
    -------
    str
        The schedule in words.
    """
    starts, factors = np.array([a for a, _ in schedule]), np.array([b for _, b in schedule])
    ratios = factors[1:] / factors[:-1]
    if len(schedule) > 2 and np.all(np.diff(starts) == 1) and np.ptp(ratios) <= 1e-9 * ratios[0]:
        return (
            f"{factors[0]:.12g} x eta at step 0, times {ratios[0]:.12g} every step "
            f"(exponential) to step {starts[-1]}, then constant"
        )
    parts = []
    for k, (start, factor) in enumerate(schedule):
        end = schedule[k + 1][0] - 1 if k + 1 < len(schedule) else None
        span = f"steps {start}-{end}" if end is not None else f"from step {start}"
        span = f"step {start}" if end == start else span
        parts.append(f"{span}: {factor:.12g} x eta")
    if len(parts) > shown:
        more = len(parts) - shown + 1
        parts = parts[: shown - 2] + [f"... ({more} segments)"] + parts[-2:]
    return ", ".join(parts)


# name=VALUE conventions: the field they set and how the value is read
_VALUED = {
    "lr_scale": ("lr_scale", _positive, "a finite number > 0"),
    "relu_prime": ("relu_prime_zero", float, "a finite number"),
    "momentum": ("momentum", _momentum, "a number in [0, 1)"),
    "lr_schedule": ("lr_schedule", parse_schedule, "START:FACTOR/START:FACTOR/..., from 0"),
}


def parse_convention(spec):
    """A :class:`Convention` from names: ``"filter_sum,patch_mean,bias,float32"``
    (a string or a sequence of names; ``lr_scale=C`` sets the step factor,
    ``relu_prime=V`` sigma'(0), ``momentum=MU``, ``lr_schedule=0:1/50:0.1``;
    ``reference`` or ``""`` none). A Convention passes through.

    Parameters
    ----------
    spec : str, sequence of str or Convention
        Comma-separated names, a list or tuple of names, or a Convention.

    Returns
    -------
    Convention
        The union of the named variants with the values set.

    Raises
    ------
    UsageError
        An unknown name or a bad value.
    """
    if isinstance(spec, Convention):
        return spec
    if not isinstance(spec, (str, list, tuple)):
        raise UsageError(
            f"a convention is a Convention, a string or a list of names, got {type(spec).__name__}"
        )
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    conv = Convention()
    for item in (str(i).strip() for i in items):
        if item in ("", "reference"):
            continue
        name, _, value = item.partition("=")
        if name in _VALUED and value:
            field, read, wanted = _VALUED[name]
            try:
                number = read(value)
                if isinstance(number, float) and not np.isfinite(number):
                    raise ValueError
            except ValueError:
                raise UsageError(f"convention {item!r}: {name} needs {wanted}") from None
            conv = replace(conv, **{field: number})
            continue
        if name not in VARIANTS or VARIANTS[name] is None or value:
            known = [k for k, v in VARIANTS.items() if v is not None]
            known += [f"{k}=..." for k in _VALUED]
            raise UsageError(f"unknown convention {item!r}; known: {', '.join(known)}")
        conv = conv | VARIANTS[name]
    if conv.nesterov and not conv.momentum:
        raise UsageError("convention 'nesterov' needs momentum=MU (Nesterov's step of a momentum)")
    return conv


VariantRun = namedtuple("VariantRun", "W loss zeros b penalty logits at")
VariantRun.__doc__ = """A run of :func:`variant_train`.

Attributes
----------
W : ndarray of shape (K, 2, m, d), float64
    The weights at the steps ``at``.
loss : ndarray of shape (T + 1,)
    The stored loss at steps 0..T (data loss; with ``loss_with_decay`` the
    penalty is included).
zeros : int
    How many pre-activations were exactly 0 over the run (sigma'(0) can matter
    only when this is > 0).
b : ndarray of shape (K, 2, m) or None
    The bias at the steps ``at`` (None without the bias variant).
penalty : ndarray of shape (T + 1,)
    (lambda/2) |W_t|^2 at every step.
logits : ndarray of shape (T + 1,)
    mean_i (F_{+1}(x_i) + F_{-1}(x_i)) at every step: the size of the two
    outputs, which sets float32's resolution of the loss.
at : ndarray of shape (K,), int
    The steps of W (the snapshots asked for, in increasing order).
"""


def variant_loss_gradient(Wf, b, Xf, y, n, P, conv: Convention, XfT=None):
    """Data loss, the gradients of W and b, and the count of exactly zero
    pre-activations under ``conv``, in the dtype of ``Wf``.

    With Convention() it is the gradient of docs/model.md §3.4:
    grad w_{j,r} = (c_F/n) sum_i l'_i sum_p sigma'(<w_{j,r}, x_i^(p)> + b_{j,r}) j y_i x_i^(p),
    c_F = 1/m (1 with filter_sum) times 1 (1/P with patch_mean)
    (:func:`refimpl.crosscheck.replay.outputs`).

    Parameters
    ----------
    Wf : ndarray of shape (2m, d)
    b : ndarray of shape (2m,) or None
    Xf : ndarray of shape (nP, d)
        Row i*P + p is patch p of input i.
    y : ndarray of shape (n,)
    XfT : ndarray of shape (d, nP), optional
        ``Xf.T`` C-contiguous (faster products when given).
    n, P : int
    conv : Convention

    Returns
    -------
    loss : float
    gW : ndarray of shape (2m, d)
    gb : ndarray of shape (2m,) or None
    zeros : int
    logits : float
        mean_i (F_{+1}(x_i) + F_{-1}(x_i)).
    """
    pre = Wf @ (Xf.T if XfT is None else XfT)  # (2m, nP)
    if b is not None:
        pre += b[:, None]
    loss, coef, zeros, logits = outputs(pre, np.asarray(y, Wf.dtype), n, P, conv)
    gb = coef.sum(axis=1) if b is not None else None
    return loss, coef @ Xf, gb, zeros, logits


def variant_train(
    W0,
    X,
    y,
    eta,
    weight_decay,
    trainable,
    steps,
    snapshots,
    conv: Convention = Convention(),
    b0=None,
    space="weight",
) -> VariantRun:
    """Full-batch GD under a convention variant (plain numpy,
    :func:`refimpl.crosscheck.replay.replay`).

    w <- (1 - c eta lambda) w - c eta grad w for trainable filters
    (docs/model.md §3.4 with the variant's gradient, c = ``lr_scale`` or the
    schedule's factor; the heavy-ball step with ``momentum``); the bias, when
    present, by the same rule; frozen filters (and their biases) do not move
    (with ``decay_frozen`` they decay). ``snapshot_offset`` is not applied
    here: W is recorded at the steps asked for.

    Parameters
    ----------
    W0 : ndarray of shape (2, m, d)
        The initial weights w^[0].
    X : ndarray of shape (n, P, d)
        The inputs.
    y : ndarray of shape (n,)
        The observed labels, +1 or -1.
    eta, weight_decay : float
        Step size eta and L2 coefficient lambda.
    trainable : ndarray of shape (2, m), bool
        False marks a frozen filter.
    steps : int
        T.
    snapshots : array_like of int
        Steps within 0..T at which W is recorded.
    conv : Convention
        The departures from docs/model.md §3 (default: none).
    b0 : ndarray of shape (2, m), optional
        The bias's initial value (with ``conv.bias``; default 0).
    space : {"weight", "gram", "auto"}
        The representation of the filters (:mod:`refimpl.crosscheck.replay`):
        weight space (the reference), the span of the distinct patches
        (float64 only), or the cheaper of the two.

    Returns
    -------
    VariantRun
    """
    with np.errstate(over="ignore", invalid="ignore"):  # a variant may diverge
        dt = np.dtype(conv.dtype)
        two, m, d = np.shape(W0)
        n, P, _ = np.shape(X)
        W0f = np.array(W0, dtype=dt).reshape(2 * m, d)
        Xf = np.ascontiguousarray(np.asarray(X, dtype=dt).reshape(n * P, d))
        if space == "auto":
            sp = choose_space(W0f, Xf, dt)
        else:
            sp = (GramSpace if space == "gram" else WeightSpace)(W0f, Xf)
        b = None if b0 is None else np.asarray(b0, np.float64).reshape(2 * m)
        at = np.array(sorted(set(int(s) for s in snapshots)), dtype=np.int64)
        args = (np.asarray(trainable, bool).reshape(2 * m), int(steps), at)
        W, bs, loss, penalty, logits, zeros = replay(
            sp, b, y, n, P, conv, float(eta), float(weight_decay), *args
        )
    if conv.loss_with_decay:  # L_S of docs/model.md §3.2, penalty included
        loss = loss + penalty
    bs = None if bs is None else bs.reshape(len(at), 2, m)
    return VariantRun(W.reshape(len(at), 2, m, d), loss, zeros, bs, penalty, logits, at)


def variant_arrays(traj, conv, stages=None, b0=None):
    """A weights-only trajectory (format 1 arrays) of the file's inputs trained
    under ``conv``: what an implementation with that convention would export
    (with ``s/b0`` and ``s/b`` when ``conv.bias``). Used to produce each
    variant on purpose (tests, README).

    Parameters
    ----------
    traj : refimpl.trajectory.Trajectory
        The file whose inputs are trained.
    conv : Convention or str
        The convention (a string is read by :func:`parse_convention`).
    stages : list of str, optional
        The stages trained; default all of the file's.
    b0 : dict of str to ndarray of shape (2, m), optional
        The bias's initial value per stage (default: the file's, else 0).

    Returns
    -------
    dict of str to ndarray
    """
    conv = parse_convention(conv)
    stages = list(stages or traj.stages)
    arrays = {
        k: v
        for k, v in traj.arrays.items()
        if k in ("format_version", "config_json") or (k == "down/inherited" and "down" in stages)
    }
    arrays["provenance_json"] = np.str_(
        json.dumps({"package": "refimpl.crosscheck.variant_train", "convention": asdict(conv)})
    )
    for s in stages:
        v = traj.stage(s)
        start = (b0 or {}).get(s, v.b0)
        run = variant_train(
            v.W0,
            v.X,
            v.y,
            float(v.eta),
            float(v.weight_decay),
            v.trainable,
            v.T,
            v.steps,
            conv,
            b0=start,
        )
        for key in INPUT_KEYS + ("steps", "patch_role"):
            if key in v:
                arrays[f"{s}/{key}"] = getattr(v, key)
        arrays[f"{s}/W"], arrays[f"{s}/loss"] = run.W, run.loss
        if conv.bias:
            arrays[f"{s}/b0"] = (
                np.zeros((2, v.W0.shape[1]))
                if start is None
                else np.asarray(start, dtype=np.float64)
            )
            arrays[f"{s}/b"] = run.b
    return arrays
