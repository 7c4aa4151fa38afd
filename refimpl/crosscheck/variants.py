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

__all__ = [
    "Convention",
    "VARIANTS",
    "VariantRun",
    "variant_train",
    "variant_arrays",
    "variant_loss_gradient",
    "parse_convention",
]

J = np.array([1.0, -1.0])  # the class j of axis 0 of W


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
    """

    filter_sum: bool = False
    patch_mean: bool = False
    bias: bool = False
    lr_scale: float = 1.0
    relu_prime_zero: float = 0.0
    dtype: str = "float64"
    loss_with_decay: bool = False

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
        return out

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
        return "; ".join(parts) or "reference conventions (docs/model.md §3)"

    def __or__(self, other):
        """The union of two sets of departures (``other`` wins on lr_scale,
        relu_prime_zero and dtype where it departs)."""
        fields = asdict(other)
        base = Convention()
        return replace(self, **{k: v for k, v in fields.items() if v != getattr(base, k)})


# The variants explain mode combines (the learning-rate scale is estimated per file).
VARIANTS = {
    "filter_sum": Convention(filter_sum=True),
    "patch_mean": Convention(patch_mean=True),
    "bias": Convention(bias=True),
    "lr_scale": None,
    "relu_prime_1": Convention(relu_prime_zero=1.0),
    "relu_prime_half": Convention(relu_prime_zero=0.5),
    "float32": Convention(dtype="float32"),
    "loss_with_decay": Convention(loss_with_decay=True),
}


def parse_convention(spec):
    """A :class:`Convention` from names: ``"filter_sum,patch_mean,bias,float32"``
    (a string or a sequence of names; ``lr_scale=C`` sets the step factor,
    ``relu_prime=V`` sigma'(0); ``reference`` or ``""`` none). A Convention
    passes through.

    Raises
    ------
    UsageError
        An unknown name or a bad value.
    """
    if isinstance(spec, Convention):
        return spec
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    conv = Convention()
    for item in (str(i).strip() for i in items):
        if item in ("", "reference"):
            continue
        name, _, value = item.partition("=")
        try:
            if name in ("lr_scale", "relu_prime") and value:
                number = float(value)
                if not np.isfinite(number) or (name == "lr_scale" and number <= 0):
                    raise ValueError
                conv = replace(
                    conv, **{"lr_scale" if name == "lr_scale" else "relu_prime_zero": number}
                )
                continue
        except ValueError:
            raise UsageError(
                f"convention {item!r}: {name} needs a finite number"
                + (" > 0" if name == "lr_scale" else "")
            ) from None
        if name not in VARIANTS or VARIANTS[name] is None or value:
            known = [k for k, v in VARIANTS.items() if v is not None] + [
                "lr_scale=C",
                "relu_prime=V",
            ]
            raise UsageError(f"unknown convention {item!r}; known: {', '.join(known)}")
        conv = conv | VARIANTS[name]
    return conv


VariantRun = namedtuple("VariantRun", "W loss zeros b penalty logits")
VariantRun.__doc__ = """A run of :func:`variant_train`.

W : ndarray of shape (K, 2, m, d), float64
    The weights at the snapshots.
loss : ndarray of shape (T + 1,)
    The stored loss at steps 0..T (data loss; with ``loss_with_decay`` the
    penalty is included).
zeros : int
    How many pre-activations were exactly 0 over the run (sigma'(0) can matter
    only when this is > 0).
b : ndarray of shape (K, 2, m) or None
    The bias at the snapshots (None without the bias variant).
penalty : ndarray of shape (T + 1,)
    (lambda/2) |W_t|^2 at every step.
logits : ndarray of shape (T + 1,)
    mean_i (F_{+1}(x_i) + F_{-1}(x_i)) at every step: the size of the two
    outputs, which sets float32's resolution of the loss.
"""


def _logistic(z):
    """l(z) = log(1 + exp(-z)) and l'(z) = -1/(1 + exp(z)), stable for any
    finite z, in the dtype of z (docs/model.md §3.2). Subnormal values of
    l' are flushed to 0: they change no sum by more than the smallest normal
    number, and subnormal arithmetic is up to 100x slower."""
    e = np.exp(-np.abs(z))
    loss = np.maximum(-z, 0) + np.log1p(e)
    dloss = np.where(z >= 0, -e / (1 + e), -1 / (1 + e)).astype(z.dtype)
    dloss[np.abs(dloss) < np.finfo(z.dtype).tiny] = 0
    return loss, dloss


def variant_loss_gradient(Wf, b, Xf, y, n, P, conv: Convention, XfT=None):
    """Data loss, the gradients of W and b, and the count of exactly zero
    pre-activations under ``conv``, in the dtype of ``Wf``.

    With Convention() it is the gradient of docs/model.md §3.4:
    grad w_{j,r} = (c_F/n) sum_i l'_i sum_p sigma'(<w_{j,r}, x_i^(p)> + b_{j,r}) j y_i x_i^(p),
    c_F = 1/m (1 with filter_sum) times 1 (1/P with patch_mean).

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
    two_m = Wf.shape[0]
    m = two_m // 2
    dt = Wf.dtype.type
    norm = (1.0 if conv.filter_sum else 1.0 / m) * (1.0 / P if conv.patch_mean else 1.0)
    pre = Wf @ (Xf.T if XfT is None else XfT)  # (2m, nP)
    if b is not None:
        pre += b[:, None]
    F = np.maximum(pre, 0).reshape(2, m, n, P).sum(axis=(1, 3)) * dt(norm)  # (2, n)
    loss, dloss = _logistic(y * (F[0] - F[1]))
    zero = pre == 0
    active = (pre > 0).astype(Wf.dtype)
    if conv.relu_prime_zero != 0.0:
        active += dt(conv.relu_prime_zero) * zero
    sign = np.repeat(J.astype(Wf.dtype), m)[:, None]  # j of each row
    coef = active * (np.repeat(dloss * y, P) * dt(norm / n))[None, :] * sign
    coef[np.abs(coef) < np.finfo(Wf.dtype).tiny] = 0  # no subnormal products (slow)
    gW = coef @ Xf  # sum_{i,p} coef x_i^(p)
    gb = coef.sum(axis=1) if b is not None else None
    return (float(np.mean(loss)), gW, gb, int(np.count_nonzero(zero)), float(np.mean(F[0] + F[1])))


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
) -> VariantRun:
    """Full-batch GD under a convention variant (plain numpy).

    w <- (1 - c eta lambda) w - c eta grad w for trainable filters
    (docs/model.md §3.4 with the variant's gradient, c = ``lr_scale``); the
    bias, when present, by the same rule; frozen filters (and their biases) do
    not move.

    Parameters
    ----------
    W0 : ndarray of shape (2, m, d)
    X : ndarray of shape (n, P, d)
    y : ndarray of shape (n,)
    eta, weight_decay : float
    trainable : ndarray of shape (2, m), bool
    steps : int
        T.
    snapshots : array_like of int
        Snapshot steps within 0..T.
    conv : Convention
    b0 : ndarray of shape (2, m), optional
        The bias's initial value (with ``conv.bias``; default 0).

    Returns
    -------
    VariantRun
    """
    with np.errstate(over="ignore", invalid="ignore"):  # a variant may diverge
        return _variant_train(W0, X, y, eta, weight_decay, trainable, steps, snapshots, conv, b0)


def _variant_train(W0, X, y, eta, weight_decay, trainable, steps, snapshots, conv, b0):
    dt = np.dtype(conv.dtype)
    two, m, d = np.shape(W0)
    n, P, _ = np.shape(X)
    W = np.array(W0, dtype=dt).reshape(2 * m, d)
    Xf = np.ascontiguousarray(np.asarray(X, dtype=dt).reshape(n * P, d))
    XfT = np.ascontiguousarray(Xf.T)
    y = np.asarray(y, dtype=dt)
    b = None
    if conv.bias:
        b = np.zeros(2 * m, dt) if b0 is None else np.array(b0, dtype=dt).reshape(2 * m)
    keep = ~np.asarray(trainable, bool).reshape(2 * m)
    step = dt.type(conv.lr_scale * eta)
    decay = dt.type(1.0 - conv.lr_scale * eta * weight_decay)
    wanted = set(int(s) for s in snapshots)
    T = int(steps)
    snaps, bs = [], []
    loss, penalty, logits, zeros = np.empty(T + 1), np.zeros(T + 1), np.empty(T + 1), 0
    for t in range(T + 1):
        if t in wanted:
            snaps.append(W.astype(np.float64).reshape(2, m, d))
            if b is not None:
                bs.append(b.astype(np.float64).reshape(2, m))
        loss[t], gW, gb, z, logits[t] = variant_loss_gradient(W, b, Xf, y, n, P, conv, XfT)
        if weight_decay:
            penalty[t] = 0.5 * weight_decay * float(np.sum(W.astype(np.float64) ** 2))
        zeros += z
        if t == T:
            break
        W = np.where(keep[:, None], W, decay * W - step * gW)
        if b is not None:
            b = np.where(keep, b, decay * b - step * gb)
    if conv.loss_with_decay:  # L_S of docs/model.md §3.2, penalty included
        loss = loss + penalty
    return VariantRun(
        np.stack(snaps), loss, zeros, np.stack(bs) if b is not None else None, penalty, logits
    )


def variant_arrays(traj, conv, stages=None, b0=None):
    """A weights-only trajectory (format 1 arrays) of the file's inputs trained
    under ``conv``: what an implementation with that convention would export
    (with ``s/b0`` and ``s/b`` when ``conv.bias``). Used to produce each
    variant on purpose (tests, README).

    Parameters
    ----------
    traj : refimpl.trajectory.Trajectory
    conv : Convention or str
    stages : list of str, optional
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
