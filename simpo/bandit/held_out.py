"""The held-out bandit landscapes of the weighting advisor (docs/advisor.md): four sets, each designed and
committed before any run on it, to validate one rule; none is the paper's.

The **first set** was designed after the advisor's rule was fixed, before any run on them, as two
flat-topped/steep-topped pairs in the paper's sense (SPEC §7: square should win the flat ones, linear the steep
ones), and not used to choose that rule (`auto`) or its parameters. It is not held out for `auto_exp`, which was
later read off the first two sets (below).

- ``plateau`` (1-D, flat top) and ``cusp`` (1-D, steep top: a Laplace peak, no flat part anywhere);
- ``mesa`` (2-D, flat top) and ``needle`` (2-D, ``sharp``'s hill-plus-spike in two dimensions).

A **second held-out set** was added with the measured rule ``auto_exp`` (simpo.advisor.AUTO_MENUS), committed with it
and before any run of either on them, to validate that rule, which was read off the first eight (docs/advisor.md):

- ``table`` (1-D, flat top: a truncated tent, exactly flat over a wide top, with a 5% hill for a unique max) and
  ``butte`` (2-D, the same in two dimensions, radially);
- ``spire`` (1-D, steep top: a Laplace spike on a wide hill) and ``ridge`` (2-D, steep across a narrow ridge,
  gentle along it, on a wide hill).

A **third held-out set** was added when the `auto` menus got one λ per scheme (simpo.temperature.init_temperatures),
committed with that change and before any run on them, to validate it (docs/advisor.md):

- ``shelf`` (1-D, flat top: a smooth box with a 7% hill) and ``terrace`` (2-D, the same as a square);
- ``thorn`` (1-D, steep top: exp(−√|a − 0.2|/0.3), an infinite slope at the max) and ``cone`` (2-D, a round
  Laplace cone on a wide hill).

A **fourth held-out set** was added with the advisor's probe (simpo.advisor.advise_bandit's early training),
committed with it and before any run on them, to validate it (docs/advisor.md):

- ``dais`` (1-D, flat top, wide; its half-height edge 0.27, under 2σ, from where the policy starts) and
  ``lagoon`` (2-D, flat top, long along a₁ and narrow along a₂);
- ``spindle`` (1-D, steep top: a triangular spike, straight sides, on a wide hill, approached from the right) and
  ``crag`` (2-D, steep top: an anisotropic L1 Laplace peak on a wide hill).
"""

from __future__ import annotations

import jax.numpy as jnp

from simpo.bandit.shapes import Landscape, flat_top, gauss


def plateau_reward(a: jnp.ndarray) -> jnp.ndarray:
    """0.9·flat_top(a; 0.4, 0.4) + 0.1·hill(a; 0.4, 0.4): a plateau of near-max reward over about [0.1, 0.7],
    with only a gentle rise (the 0.1 hill) to the unique max 1 at 0.4."""
    return 0.9 * flat_top(a, (0.4,), 0.4) + 0.1 * gauss(a, (0.4,), 0.4)


def cusp_reward(a: jnp.ndarray) -> jnp.ndarray:
    """exp(−|a − 0.6| / 0.25): a Laplace peak, steepest at its max 1 at 0.6, with no flat part."""
    return jnp.exp(-jnp.sum(jnp.abs(a - 0.6), axis=-1) / 0.25)


def mesa_reward(a: jnp.ndarray) -> jnp.ndarray:
    """``plateau`` in 2-D: 0.9·flat_top(a; (0.4, 0.4), 0.45) + 0.1·hill(a; (0.4, 0.4), 0.45), max 1 at (0.4, 0.4)."""
    return 0.9 * flat_top(a, (0.4, 0.4), 0.45) + 0.1 * gauss(a, (0.4, 0.4), 0.45)


def needle_reward(a: jnp.ndarray) -> jnp.ndarray:
    """``sharp`` in 2-D: 0.5·hill(a; (0.5, 0.5), 0.4) + 0.5·spike(a; (0.5, 0.5), 0.07), max 1 at (0.5, 0.5)."""
    return 0.5 * gauss(a, (0.5, 0.5), 0.4) + 0.5 * gauss(a, (0.5, 0.5), 0.07)


def _tent_top(dist: jnp.ndarray, reach: float) -> jnp.ndarray:
    """min(1, 1.4·(1 − dist/reach)₊): a tent of base radius `reach`, cut flat at 1 (within 0.29·reach)."""
    return jnp.minimum(1.0, 1.4 * jnp.maximum(1.0 - dist / reach, 0.0))


def table_reward(a: jnp.ndarray) -> jnp.ndarray:
    """0.95·tent_top(|a − 0.5|; 1) + 0.05·hill(a; 0.5, 0.5): exactly flat at 0.95 + hill over about [0.21, 0.79],
    straight sides down to 0 at −0.5 and 1.5; unique max 1 at 0.5."""
    return 0.95 * _tent_top(jnp.abs(a[..., 0] - 0.5), 1.0) + 0.05 * gauss(a, (0.5,), 0.5)


def butte_reward(a: jnp.ndarray) -> jnp.ndarray:
    """``table`` in 2-D, radially around c = (0.4, 0.3): 0.95·tent_top(‖a − c‖; 1) + 0.05·hill(a; c, 0.5);
    max 1 at c."""
    c = jnp.asarray((0.4, 0.3), a.dtype)
    return 0.95 * _tent_top(jnp.sqrt(jnp.sum((a - c) ** 2, axis=-1)), 1.0) + 0.05 * gauss(a, (0.4, 0.3), 0.5)


def spire_reward(a: jnp.ndarray) -> jnp.ndarray:
    """0.4·hill(a; 0.4, 0.5) + 0.6·exp(−|a − 0.4| / 0.04): a Laplace spike on a wide hill, max 1 at 0.4."""
    return 0.4 * gauss(a, (0.4,), 0.5) + 0.6 * jnp.exp(-jnp.abs(a[..., 0] - 0.4) / 0.04)


def ridge_reward(a: jnp.ndarray) -> jnp.ndarray:
    """0.3·hill(a; (0.5, 0.4), 0.5) + 0.7·across·along: a ridge at a₂ = 0.4 of width 0.06 (across, Gaussian),
    rising gently along it (0.6 + 0.4·exp(−(a₁ − 0.5)²/(2·0.5²))); max 1 at (0.5, 0.4)."""
    across = jnp.exp(-((a[..., 1] - 0.4) ** 2) / (2 * 0.06**2))
    along = 0.6 + 0.4 * jnp.exp(-((a[..., 0] - 0.5) ** 2) / (2 * 0.5**2))
    return 0.3 * gauss(a, (0.5, 0.4), 0.5) + 0.7 * across * along


def _box(x: jnp.ndarray, lo: float, hi: float, soft: float) -> jnp.ndarray:
    """σ((x − lo)/soft)·σ((hi − x)/soft) / its value at (lo + hi)/2: a smooth box, flat between lo and hi, with
    logistic sides of width ~soft; exactly 1 at its center (its unique max)."""
    center = jnp.asarray(0.5 * (hi - lo) / soft, x.dtype)
    peak = jnp.square(jnp.reciprocal(1.0 + jnp.exp(-center)))
    return jnp.reciprocal(1.0 + jnp.exp(-(x - lo) / soft)) * jnp.reciprocal(1.0 + jnp.exp(-(hi - x) / soft)) / peak


def shelf_reward(a: jnp.ndarray) -> jnp.ndarray:
    """0.93·box(a; −0.05, 0.75) + 0.07·hill(a; 0.35, 0.4): flat (logistic sides of width 0.03) over about
    [−0.05, 0.75], with a gentle rise to the unique max 1 at 0.35."""
    return 0.93 * _box(a[..., 0], -0.05, 0.75, 0.03) + 0.07 * gauss(a, (0.35,), 0.4)


def terrace_reward(a: jnp.ndarray) -> jnp.ndarray:
    """0.93·box(a₁; −0.3, 0.5)·box(a₂; 0, 0.8) + 0.07·hill(a; (0.1, 0.4), 0.4): a square flat top around
    (0.1, 0.4), its unique max 1."""
    top = _box(a[..., 0], -0.3, 0.5, 0.03) * _box(a[..., 1], 0.0, 0.8, 0.03)
    return 0.93 * top + 0.07 * gauss(a, (0.1, 0.4), 0.4)


def thorn_reward(a: jnp.ndarray) -> jnp.ndarray:
    """exp(−√(|a − 0.2| / 0.3)): gentle far away, with an infinite slope at the max 1 at 0.2 (steeper at the top
    than a Laplace peak)."""
    return jnp.exp(-jnp.sqrt(jnp.abs(a[..., 0] - 0.2) / 0.3))


def cone_reward(a: jnp.ndarray) -> jnp.ndarray:
    """0.35·hill(a; c, 0.5) + 0.65·exp(−‖a − c‖ / 0.08), c = (−0.3, 0.45): a round Laplace cone (Euclidean
    distance) on a wide hill; max 1 at c."""
    dist = jnp.sqrt(jnp.sum((a - jnp.asarray((-0.3, 0.45), a.dtype)) ** 2, axis=-1))
    return 0.35 * gauss(a, (-0.3, 0.45), 0.5) + 0.65 * jnp.exp(-dist / 0.08)


def dais_reward(a: jnp.ndarray) -> jnp.ndarray:
    """0.92·flat_top(a; 0.45, 0.5) + 0.08·hill(a; 0.45, 0.5): near-max over about [0.05, 0.85], max 1 at 0.45."""
    return 0.92 * flat_top(a, (0.45,), 0.5) + 0.08 * gauss(a, (0.45,), 0.5)


def lagoon_reward(a: jnp.ndarray) -> jnp.ndarray:
    """0.94·exp(−(((a₁ − 0.3)/0.6)² + ((a₂ + 0.2)/0.25)²)⁴) + 0.06·hill(a; c, 0.4), c = (0.3, −0.2): an
    elliptical flat top (half-axes about 0.5 and 0.2), max 1 at c."""
    r2 = ((a[..., 0] - 0.3) / 0.6) ** 2 + ((a[..., 1] + 0.2) / 0.25) ** 2
    return 0.94 * jnp.exp(-(r2**4)) + 0.06 * gauss(a, (0.3, -0.2), 0.4)


def spindle_reward(a: jnp.ndarray) -> jnp.ndarray:
    """0.4·hill(a; 0.1, 0.5) + 0.6·(1 − |a − 0.1|/0.06)₊: a triangular spike (straight sides, base half-width
    0.06) on a wide hill, max 1 at 0.1."""
    return 0.4 * gauss(a, (0.1,), 0.5) + 0.6 * jnp.maximum(1.0 - jnp.abs(a[..., 0] - 0.1) / 0.06, 0.0)


def crag_reward(a: jnp.ndarray) -> jnp.ndarray:
    """0.4·hill(a; c, 0.5) + 0.6·exp(−(|a₁ − 0.2|/0.05 + |a₂ + 0.4|/0.2)), c = (0.2, −0.4): an anisotropic
    L1 Laplace peak (a diamond, steepest across a₁) on a wide hill, max 1 at c."""
    peak = jnp.exp(-(jnp.abs(a[..., 0] - 0.2) / 0.05 + jnp.abs(a[..., 1] + 0.4) / 0.2))
    return 0.4 * gauss(a, (0.2, -0.4), 0.5) + 0.6 * peak


_HELD_OUT = "designed as a held-out landscape for the advisor (docs/advisor.md), not the paper's"
_HELD_OUT_2 = ("designed as a held-out landscape of the second set, for the advisor's measured rule auto_exp "
               "(docs/advisor.md), not the paper's")
_HELD_OUT_3 = ("designed as a held-out landscape of the third set, for one λ per scheme of the auto menus "
               "(docs/advisor.md), not the paper's")

_HELD_OUT_4 = ("designed as a held-out landscape of the fourth set, for the advisor's probe (early training) "
               "(docs/advisor.md), not the paper's")

HELD_OUT: dict[str, Landscape] = {
    "plateau": Landscape(
        name="plateau", reward_fn=plateau_reward, action_dim=1, init_mean=(-0.5,), init_std=(0.15,),
        max_reward=1.0, argmax=(0.4,),
        description="1-D flat top: a plateau of near-max reward over about [0.1, 0.7] with a gentle rise to the "
        "max at 0.4; policy starts at −0.5",
        source=f"designed: flat top ({_HELD_OUT})", held_out=1,
    ),
    "cusp": Landscape(
        name="cusp", reward_fn=cusp_reward, action_dim=1, init_mean=(-0.5,), init_std=(0.15,),
        max_reward=1.0, argmax=(0.6,),
        description="1-D steep top: a Laplace peak exp(−|a − 0.6|/0.25); policy starts at −0.5",
        source=f"designed: steep top ({_HELD_OUT})", held_out=1,
    ),
    "mesa": Landscape(
        name="mesa", reward_fn=mesa_reward, action_dim=2, init_mean=(-0.6, -0.6), init_std=(0.15, 0.15),
        max_reward=1.0, argmax=(0.4, 0.4),
        description="2-D flat top: a round plateau (radius about 0.35) around (0.4, 0.4) with a gentle rise to its "
        "center; policy starts at (−0.6, −0.6)",
        source=f"designed: flat top ({_HELD_OUT})", held_out=1,
    ),
    "needle": Landscape(
        name="needle", reward_fn=needle_reward, action_dim=2, init_mean=(-0.5, -0.5), init_std=(0.15, 0.15),
        max_reward=1.0, argmax=(0.5, 0.5),
        description="2-D steep top: a wide hill at half height with a narrow spike (width 0.07) on top at "
        "(0.5, 0.5); policy starts at (−0.5, −0.5)",
        source=f"designed: steep top ({_HELD_OUT})", held_out=1,
    ),
    "table": Landscape(
        name="table", reward_fn=table_reward, action_dim=1, init_mean=(-0.5,), init_std=(0.15,),
        max_reward=1.0, argmax=(0.5,),
        description="1-D flat top: a truncated tent, flat over about [0.21, 0.79] (a 5% hill gives the max at 0.5), "
        "zero below −0.5; policy starts at −0.5",
        source=f"designed: flat top ({_HELD_OUT_2})", held_out=2,
    ),
    "spire": Landscape(
        name="spire", reward_fn=spire_reward, action_dim=1, init_mean=(-0.5,), init_std=(0.15,),
        max_reward=1.0, argmax=(0.4,),
        description="1-D steep top: a Laplace spike exp(−|a − 0.4|/0.04) (0.6 of the reward) on a wide hill; "
        "policy starts at −0.5",
        source=f"designed: steep top ({_HELD_OUT_2})", held_out=2,
    ),
    "butte": Landscape(
        name="butte", reward_fn=butte_reward, action_dim=2, init_mean=(-0.5, -0.5), init_std=(0.15, 0.15),
        max_reward=1.0, argmax=(0.4, 0.3),
        description="2-D flat top: a round truncated tent around (0.4, 0.3), flat within radius about 0.29, zero "
        "beyond radius 1; policy starts at (−0.5, −0.5)",
        source=f"designed: flat top ({_HELD_OUT_2})", held_out=2,
    ),
    "ridge": Landscape(
        name="ridge", reward_fn=ridge_reward, action_dim=2, init_mean=(-0.5, -0.5), init_std=(0.15, 0.15),
        max_reward=1.0, argmax=(0.5, 0.4),
        description="2-D steep top: a ridge of width 0.06 across (at a₂ = 0.4), gentle along, on a wide hill; max "
        "at (0.5, 0.4); policy starts at (−0.5, −0.5)",
        source=f"designed: steep top ({_HELD_OUT_2})", held_out=2,
    ),
    "shelf": Landscape(
        name="shelf", reward_fn=shelf_reward, action_dim=1, init_mean=(-0.6,), init_std=(0.15,),
        max_reward=1.0, argmax=(0.35,),
        description="1-D flat top: a smooth box, flat over about [−0.05, 0.75], with a 7% hill for the max at 0.35; "
        "policy starts at −0.6",
        source=f"designed: flat top ({_HELD_OUT_3})", held_out=3,
    ),
    "thorn": Landscape(
        name="thorn", reward_fn=thorn_reward, action_dim=1, init_mean=(-0.6,), init_std=(0.15,),
        max_reward=1.0, argmax=(0.2,),
        description="1-D steep top: exp(−√(|a − 0.2|/0.3)), an infinite slope at the max; policy starts at −0.6",
        source=f"designed: steep top ({_HELD_OUT_3})", held_out=3,
    ),
    "terrace": Landscape(
        name="terrace", reward_fn=terrace_reward, action_dim=2, init_mean=(0.7, -0.6), init_std=(0.15, 0.15),
        max_reward=1.0, argmax=(0.1, 0.4),
        description="2-D flat top: a square plateau over about [−0.3, 0.5] × [0, 0.8] with a 7% hill for the max "
        "at (0.1, 0.4); policy starts at (0.7, −0.6)",
        source=f"designed: flat top ({_HELD_OUT_3})", held_out=3,
    ),
    "cone": Landscape(
        name="cone", reward_fn=cone_reward, action_dim=2, init_mean=(0.5, -0.5), init_std=(0.15, 0.15),
        max_reward=1.0, argmax=(-0.3, 0.45),
        description="2-D steep top: a round Laplace cone (scale 0.08) on a wide hill, max at (−0.3, 0.45); policy "
        "starts at (0.5, −0.5)",
        source=f"designed: steep top ({_HELD_OUT_3})", held_out=3,
    ),
    "dais": Landscape(
        name="dais", reward_fn=dais_reward, action_dim=1, init_mean=(-0.3,), init_std=(0.15,),
        max_reward=1.0, argmax=(0.45,),
        description="1-D flat top: near-max over about [0.05, 0.85] with an 8% hill for the max at 0.45; policy "
        "starts at −0.3, close to its edge",
        source=f"designed: flat top ({_HELD_OUT_4})", held_out=4,
    ),
    "spindle": Landscape(
        name="spindle", reward_fn=spindle_reward, action_dim=1, init_mean=(0.7,), init_std=(0.15,),
        max_reward=1.0, argmax=(0.1,),
        description="1-D steep top: a triangular spike (base half-width 0.06) on a wide hill, max at 0.1; policy "
        "starts at 0.7",
        source=f"designed: steep top ({_HELD_OUT_4})", held_out=4,
    ),
    "lagoon": Landscape(
        name="lagoon", reward_fn=lagoon_reward, action_dim=2, init_mean=(-0.6, 0.6), init_std=(0.15, 0.15),
        max_reward=1.0, argmax=(0.3, -0.2),
        description="2-D flat top: an elliptical plateau (half-axes about 0.5 along a₁, 0.2 along a₂) with a 6% "
        "hill for the max at (0.3, −0.2); policy starts at (−0.6, 0.6)",
        source=f"designed: flat top ({_HELD_OUT_4})", held_out=4,
    ),
    "crag": Landscape(
        name="crag", reward_fn=crag_reward, action_dim=2, init_mean=(-0.5, 0.5), init_std=(0.15, 0.15),
        max_reward=1.0, argmax=(0.2, -0.4),
        description="2-D steep top: an anisotropic L1 Laplace peak (scales 0.05 and 0.2) on a wide hill, max at "
        "(0.2, −0.4); policy starts at (−0.5, 0.5)",
        source=f"designed: steep top ({_HELD_OUT_4})", held_out=4,
    ),
}
