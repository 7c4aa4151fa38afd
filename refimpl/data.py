"""Data of the upstream and downstream tasks (docs/model.md §2), and the
roles of their patches: which patch of each input holds which signal and
which holds the noise (§2.4), for data in any patch order.

A :class:`Task` is the data (patches X, labels y and yhat) and, for the
synthetic tasks of §2 only, their signal/noise structure
(:class:`SignalNoise`: the signal rows built from u and v_k, the noise
patches xi, the patch roles). Real data have no such structure
(``Task.structure`` is None).

All randomness comes from a ``numpy.random.Generator`` passed in; nothing here
seeds anything globally.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .errors import PatchRoleError

__all__ = [
    "Task",
    "SignalNoise",
    "signal_vectors",
    "task_signals",
    "noise_basis",
    "sample_task",
    "patch_roles",
    "role_positions",
    "NOISE",
    "ROLE_RTOL",
]

NOISE = -1  # the role of the noise patch in a patch-role array
ROLE_RTOL = 1e-12  # a patch holds a vector when they agree to this relative tolerance
_LISTED = 10  # inputs named in a PatchRoleError before "and k more"


@dataclass(frozen=True)
class SignalNoise:
    """The signal/noise structure of a synthetic task (docs/model.md §2.3,
    §2.4): what the patches are made of, which the coefficient tracking of §4
    needs and real data do not have.

    Attributes
    ----------
    signals : ndarray of shape (S, d)
        The signal rows mu_s built from the signal vectors u and v_k
        (:func:`task_signals`): ``[u + v_k]`` (joint layout) or ``[u, v_k]``
        (split layout).
    xi : ndarray of shape (n, d)
        Noise patches xi_i.
    patch_role : ndarray of shape (n, P), int, optional
        The role of every patch: s for the patch ``y_clean[i] * signals[s]``,
        :data:`NOISE` (-1) for the noise patch. None (the default) means
        "derive it from the data" (:func:`patch_roles`).
    """

    signals: np.ndarray
    xi: np.ndarray
    patch_role: np.ndarray | None = None


_KEEP = object()  # Task(..., xi=_KEEP): keep the structure's own value


@dataclass(frozen=True, init=False)
class Task:
    """Training (or test) data of one task (docs/model.md §2): the data, and
    for synthetic tasks the signal/noise structure they are made of.

    ``Task(X, y, y_clean, xi=..., signals=..., patch_role=...)`` is shorthand
    for ``structure=SignalNoise(signals, xi, patch_role)``; with a
    ``structure`` given as well, the keywords replace its fields (so
    ``dataclasses.replace(task, xi=...)`` works).

    Attributes
    ----------
    X : ndarray of shape (n, P, d)
        Patches. In a synthetic task input i holds the S signal patches
        ``y_clean[i] * signals[s]`` and the noise patch ``xi[i]`` in any order
        (docs/model.md §2.4); :func:`sample_task` puts the signal patches
        first, in the order of ``signals``, and the noise patch last.
    y : ndarray of shape (n,)
        Observed labels (+-1, float64), possibly flipped.
    y_clean : ndarray of shape (n,)
        True labels yhat (+-1, float64).
    structure : SignalNoise or None
        The signals, noise patches and patch roles of a synthetic task; None
        for data without that structure (real images,
        :mod:`refimpl.lab.image_experiment`), which can only be trained with
        ``track=False``.

    Parameters
    ----------
    xi : ndarray of shape (n, d), optional, keyword-only
        The noise patches xi_i (``SignalNoise.xi``).
    signals : ndarray of shape (S, d), optional, keyword-only
        The signal rows mu_s (``SignalNoise.signals``); needed together with
        ``xi`` when there is no ``structure``.
    patch_role : ndarray of shape (n, P), int, optional, keyword-only
        The patch roles (``SignalNoise.patch_role``); None: derived.
    """

    X: np.ndarray
    y: np.ndarray
    y_clean: np.ndarray
    structure: SignalNoise | None = None

    def __init__(self, X, y, y_clean, structure=None, *, xi=_KEEP, signals=_KEEP, patch_role=_KEEP):
        given = {
            k: v
            for k, v in (("signals", signals), ("xi", xi), ("patch_role", patch_role))
            if v is not _KEEP
        }
        if structure is not None and given:
            structure = dataclasses.replace(structure, **given)
        elif given:
            if not {"signals", "xi"} <= given.keys():
                raise TypeError("a Task with a signal/noise structure needs both xi and signals")
            structure = SignalNoise(**given)
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "y_clean", y_clean)
        object.__setattr__(self, "structure", structure)

    @property
    def n(self) -> int:
        return self.X.shape[0]

    def _structure(self, name):
        if self.structure is None:
            raise AttributeError(
                f"this Task has no {name}: it has no signal/noise structure "
                "(Task.structure is None, as for real images; docs/model.md §2.4)"
            )
        return getattr(self.structure, name)

    @property
    def signals(self) -> np.ndarray:
        """(S, d): ``structure.signals``; AttributeError without a structure."""
        return self._structure("signals")

    @property
    def xi(self) -> np.ndarray:
        """(n, d): ``structure.xi``; AttributeError without a structure."""
        return self._structure("xi")

    @property
    def patch_role(self) -> np.ndarray | None:
        """(n, P) int: ``structure.patch_role``; None when the roles are to be
        derived, or without a structure."""
        return None if self.structure is None else self.structure.patch_role

    def roles(self):
        """The checked patch roles, given or derived (:func:`patch_roles`).

        Returns
        -------
        ndarray of shape (n, P), int64

        Raises
        ------
        PatchRoleError
            When the task has no signal/noise structure, when the roles of
            some inputs cannot be determined, or the given ``patch_role`` does
            not fit the data.
        """
        if self.structure is None:
            raise PatchRoleError(
                "the task has no signal/noise structure (Task.structure is None, as for "
                "real images), so its patches have no roles: train it with track=False"
            )
        s = self.structure
        return patch_roles(self.X, self.y_clean, s.signals, s.patch_role, xi=s.xi)


def signal_vectors(d, u_norm, v_up_norm, v_down_norm, v_cos=0.0):
    """u, v_up, v_down on coordinate axes (docs/model.md §2.5).

    u = |u| e_0, v_up = |v_up| e_1, v_down = |v_down| (c e_1 + sqrt(1 - c^2) e_2)
    with c = ``v_cos``; u is orthogonal to both v's.

    Parameters
    ----------
    d : int
        The dimension (at least 3).
    u_norm, v_up_norm, v_down_norm : float
        The norms |u|, |v_1|, |v_2|.
    v_cos : float, optional
        The cosine c between v_up and v_down, in [-1, 1].

    Returns
    -------
    u, v_up, v_down : ndarray of shape (d,)
    """
    e = np.eye(3, d)
    u = u_norm * e[0]
    v_up = v_up_norm * e[1]
    v_down = v_down_norm * (v_cos * e[1] + np.sqrt(1.0 - v_cos**2) * e[2])
    return u, v_up, v_down


def task_signals(u, v, layout):
    """The signal rows of a task: ``[u + v]`` (joint) or ``[u, v]`` (split).

    Parameters
    ----------
    u : ndarray of shape (d,)
        The shared signal.
    v : ndarray of shape (d,)
        The task's own signal v_k.
    layout : {"joint", "split"}
        Any other value is read as ``"split"``.

    Returns
    -------
    ndarray of shape (S, d)
    """
    if layout == "joint":
        return (u + v)[None, :]
    return np.stack([u, v])


def noise_basis(u, v):
    """Orthonormal rows spanning the nonzero ones of u, v: the directions that
    Pi_k = I - u u^T/|u|^2 - v v^T/|v|^2 removes (docs/model.md §2.3; a zero
    vector's projection is skipped).

    Parameters
    ----------
    u : ndarray of shape (d,)
        The shared signal.
    v : ndarray of shape (d,)
        The task's own signal v_k.

    Returns
    -------
    ndarray of shape (k, d), k in {0, 1, 2}
    """
    rows = [w for w in (u, v) if np.any(w != 0)]
    if not rows:
        return np.zeros((0, u.shape[0]))
    q, _ = np.linalg.qr(np.stack(rows).T)
    return q.T


def sample_noise(rng, n, sigma_p, basis):
    """xi_i ~ N(0, sigma_p^2 Pi) drawn as Pi g with g ~ N(0, sigma_p^2 I_d).

    Returns
    -------
    ndarray of shape (n, d)
    """
    g = sigma_p * rng.standard_normal((n, basis.shape[1]))
    return g - (g @ basis.T) @ basis


def sample_task(rng, n, u, v, sigma_p, flip, layout):
    """Draw n samples of the task with shared signal u and own signal v.

    Follows docs/model.md §2 steps 1-4: yhat uniform on {+1, -1}; y = -yhat
    with probability ``flip``; xi ~ N(0, sigma_p^2 Pi); patches as in the
    layout.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the labels, the flips and the noise (drawn in that
        order).
    n : int
        The number of samples.
    u, v : ndarray of shape (d,)
        The shared signal u and the task's own signal v_k.
    sigma_p, flip : float
        The noise scale sigma_{p,k} and the label-flip probability p_k.
    layout : {"joint", "split"}
        One signal patch u + v (joint) or two, u and v (split)
        (docs/model.md §2.4).

    Returns
    -------
    Task
        With its :class:`SignalNoise` structure (``signals``, ``xi``).
    """
    y_clean = rng.choice(np.array([1.0, -1.0]), size=n)
    flipped = rng.random(n) < flip
    y = np.where(flipped, -y_clean, y_clean)
    xi = sample_noise(rng, n, sigma_p, noise_basis(u, v))
    signals = task_signals(u, v, layout)
    X = np.concatenate([y_clean[:, None, None] * signals[None, :, :], xi[:, None, :]], axis=1)
    return Task(
        X=np.ascontiguousarray(X),
        y=y,
        y_clean=y_clean,
        structure=SignalNoise(signals=signals, xi=xi),
    )


# ----------------------------------------------------------------------
# patch roles (docs/model.md §2.4 and §9.3)


def patch_roles(X, y_clean, signals, patch_role=None, *, xi=None, rtol=ROLE_RTOL):
    """The role of every patch of every input: which signal it holds, or noise
    (docs/model.md §2.4; used by the tracking of §4 and the read-off of §9.3).

    Patch p of input i *holds* signal s when it equals ``y_clean[i] *
    signals[s]`` to rounding: ``max|X[i, p] - yhat_i sig_s| <= rtol * max|sig_s|``
    (a zero signal is held only by an exactly zero patch). The noise patch is
    the one patch left over; when ``xi`` is given it must equal ``xi[i]`` in
    the same sense.

    Without ``patch_role`` the roles are derived. Patches that are equal bit
    for bit are interchangeable (every computation gives the same numbers
    whichever of them takes which role), so the roles of input i are
    determined when every signal is held by the copies of a single patch
    value, and every patch value holds at most as many signals as it has
    copies. They cannot be determined when a signal is held by no patch, or by
    two different patch values (two patches that agree to rounding only), or
    when one patch holds two signals that no other patch holds.

    Parameters
    ----------
    X : ndarray of shape (n, P, d)
        The inputs; patch p of input i is x_i^(p).
    y_clean : ndarray of shape (n,)
        True labels yhat, +-1.
    signals : ndarray of shape (S, d)
        P must be S + 1: S signal patches and one noise patch per input.
    patch_role : array_like of shape (n, P), int, optional
        Roles to check instead of deriving them: s in 0..S-1 for the patch
        holding signal s, -1 (:data:`NOISE`) for the noise patch; every row
        has each signal once and one noise patch.
    xi : ndarray of shape (n, d), optional
        Noise patches; checked against the patch that gets the noise role.
    rtol : float
        Relative tolerance of "equal to rounding".

    Returns
    -------
    ndarray of shape (n, P), int64

    Raises
    ------
    PatchRoleError
        P != S + 1, malformed arrays, or inputs whose roles cannot be
        determined (or whose given roles do not fit the data); the message
        names the first inputs concerned.
    """
    X, y_clean, signals, xi = _role_inputs(X, y_clean, signals, xi)
    n, S = X.shape[0], signals.shape[0]
    if patch_role is None:
        roles, problems = _derive_roles(X, y_clean, signals, rtol)
        what = "patch roles cannot be determined"
        hint = "; give Task.patch_role to set them"
    else:
        roles, problems = _check_given_roles(X, y_clean, signals, patch_role, rtol)
        what = "patch_role does not fit the data"
        hint = ""
    if xi is not None:
        rows = np.array([i for i in range(n) if i not in problems], dtype=np.int64)
        q = role_positions(roles[rows], S)[1]
        bad = ~_equal_to_rounding(X[rows, q], xi[rows], rtol)
        for i, p in zip(rows[bad], q[bad], strict=True):
            left = " (the patch left over)" if patch_role is None else ""
            problems[int(i)] = f"its noise patch {p}{left} does not equal xi[{i}]"
    if problems:
        raise PatchRoleError(
            f"{what} for {len(problems)} of {n} inputs: {_list_inputs(problems)}{hint}"
        )
    return roles


def role_positions(patch_role, S):
    """Positions of the roles within each input: ``p_s(i)`` and ``q(i)`` of
    docs/model.md §9.3.

    Parameters
    ----------
    patch_role : ndarray of shape (n, P), int
        Valid roles (each row holds 0..S-1 once and one -1), e.g. from
        :func:`patch_roles`.
    S : int
        Signal patches per input.

    Returns
    -------
    signal_patch : ndarray of shape (n, S), int64
        ``signal_patch[i, s]``: the patch of input i holding signal s.
    noise_patch : ndarray of shape (n,), int64
        The noise patch of input i.
    """
    order = np.argsort(np.asarray(patch_role), axis=1, kind="stable")  # roles -1, 0, .., S-1
    return (
        np.ascontiguousarray(order[:, 1 : S + 1], dtype=np.int64),
        np.ascontiguousarray(order[:, 0], dtype=np.int64),
    )


def _role_inputs(X, y_clean, signals, xi):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 3:
        raise PatchRoleError(f"X must have shape (n, P, d), got {X.shape}")
    n, P, d = X.shape
    y_clean = np.asarray(y_clean, dtype=np.float64)
    if y_clean.shape != (n,) or not np.all(np.abs(y_clean) == 1.0):
        raise PatchRoleError(f"y_clean must have shape ({n},) with entries +1 or -1")
    signals = np.asarray(signals, dtype=np.float64)
    if signals.ndim != 2 or signals.shape[1] != d:
        raise PatchRoleError(f"signals must have shape (S, d={d}), got {signals.shape}")
    S = signals.shape[0]
    if P != S + 1:
        raise PatchRoleError(
            f"tracking needs P = S + 1 patches (S signal patches and one noise "
            f"patch per input), got P={P}, S={S}"
        )
    if xi is not None:
        xi = np.asarray(xi, dtype=np.float64)
        if xi.shape != (n, d):
            raise PatchRoleError(f"xi must have shape ({n}, {d}), got {xi.shape}")
    return X, y_clean, signals, xi


def _equal_to_rounding(a, b, rtol):
    """Rows of a (..., d) that equal the rows of b: max|a - b| <= rtol max|b|."""
    return np.abs(a - b).max(axis=-1) <= rtol * np.abs(b).max(axis=-1)


def _holds(X, y_clean, signals, rtol):
    """holds[i, p, s]: patch p of input i equals yhat_i sig_s to rounding, (n, P, S)."""
    n, P, _ = X.shape
    S = signals.shape[0]
    holds = np.empty((n, P, S), dtype=bool)
    for s in range(S):
        target = y_clean[:, None] * signals[s]  # (n, d)
        for p in range(P):
            holds[:, p, s] = _equal_to_rounding(X[:, p], target, rtol)
    return holds


def _derive_roles(X, y_clean, signals, rtol):
    """Roles from the data; returns (roles (n, P), {input: reason})."""
    n, P, _ = X.shape
    holds = _holds(X, y_clean, signals, rtol)
    if signals.shape[0] == 0:  # P = 1: the noise patch alone
        return np.full((n, P), NOISE, dtype=np.int64), {}
    roles = np.where(holds.any(axis=2), np.argmax(holds, axis=2), NOISE).astype(np.int64)
    # the usual case: every signal held by exactly one patch, no patch holding two
    plain = np.all(holds.sum(axis=1) == 1, axis=1) & np.all(holds.sum(axis=2) <= 1, axis=1)
    problems = {}
    for i in np.flatnonzero(~plain):
        found, reason = _resolve_input(X[i], holds[i], y_clean[i], signals, rtol)
        if found is None:
            problems[int(i)] = reason
        else:
            roles[i] = found
    return roles, problems


def _resolve_input(Xi, holds_i, yhat_i, signals, rtol):
    """Roles of one input whose patches are not in one-to-one correspondence
    with the signals: group bit-identical patches, then give each group the
    signals it holds. Returns (roles (P,), None) or (None, reason)."""
    P, S = holds_i.shape
    first = []  # the first patch of each group
    group = np.empty(P, dtype=np.int64)
    for p in range(P):
        for g, q in enumerate(first):
            if np.array_equal(Xi[p], Xi[q]):
                group[p] = g
                break
        else:
            group[p] = len(first)
            first.append(p)
    held = [np.flatnonzero(holds_i[q]) for q in first]
    for s in range(S):
        holders = [first[g] for g in range(len(first)) if s in held[g]]
        if not holders:
            flipped = _equal_to_rounding(Xi, -yhat_i * signals[s], rtol)
            note = (
                f" (patch {int(np.argmax(flipped))} equals -yhat*signals[{s}]: is y_clean right?)"
                if flipped.any() and np.any(signals[s] != 0)
                else ""
            )
            return None, f"no patch equals yhat*signals[{s}]{note}"
        if len(holders) > 1:
            return None, (
                f"patches {holders[0]} and {holders[1]} differ but both equal "
                f"yhat*signals[{s}] to rounding"
            )
    roles = np.full(P, NOISE, dtype=np.int64)
    for g, q in enumerate(first):
        members = np.flatnonzero(group == g)
        if held[g].size > members.size:
            names = " and ".join(f"yhat*signals[{s}]" for s in held[g])
            return None, f"patch {q} equals {names} to rounding and no other patch does"
        roles[members[: held[g].size]] = held[g]
    return roles, None


def _check_given_roles(X, y_clean, signals, patch_role, rtol):
    """Check given roles against the data; returns (roles (n, P), {input: reason})."""
    n, P, _ = X.shape
    S = signals.shape[0]
    roles = np.asarray(patch_role)
    if roles.shape != (n, P) or not np.issubdtype(roles.dtype, np.integer):
        raise PatchRoleError(
            f"patch_role must be an integer array of shape ({n}, {P}), "
            f"got {roles.dtype} {roles.shape}"
        )
    roles = roles.astype(np.int64)
    problems = {}
    well_formed = np.all(np.sort(roles, axis=1) == np.arange(-1, S), axis=1)
    for i in np.flatnonzero(~well_formed):
        problems[int(i)] = (
            f"roles {roles[i].tolist()} are not one noise patch (-1) and "
            f"each of the signals {list(range(S))} once"
        )
    if S == 0:
        return roles, problems
    target = y_clean[:, None, None] * signals[np.clip(roles, 0, S - 1)]  # (n, P, d)
    fits = _equal_to_rounding(X, target, rtol) | (roles == NOISE)
    for i, p in zip(*np.nonzero(~fits & well_formed[:, None]), strict=True):
        problems.setdefault(int(i), f"patch {p} does not equal yhat*signals[{roles[i, p]}]")
    return roles, problems


def _list_inputs(problems):
    """'input 3: reason; input 7: reason; ... and k more' for a PatchRoleError."""
    keys = sorted(problems)
    text = "; ".join(f"input {i}: {problems[i]}" for i in keys[:_LISTED])
    if len(keys) > _LISTED:
        text += f"; and {len(keys) - _LISTED} more"
    return text
