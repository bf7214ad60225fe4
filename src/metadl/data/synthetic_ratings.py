"""Generated ratings with a planted low-rank preference structure (for tests and examples).

User ``u`` belongs to one of ``n_groups`` taste groups (its categorical feature ``group``); its taste
vector is the group's centre plus noise. Item ``i`` has a factor vector ``v_i`` and a bias ``b_i``;
its multi-hot "genres" are the signs of the first factor coordinates. A rating is
``clip(round(3 + b_i + scale * <t_u, v_i> + noise), 1, 5)``. Each user rates a random number of distinct
items in ``[min_ratings, max_ratings]``, at increasing times: uniformly at random, or, with
``selection > 0``, favouring the items that match the user's taste (weights ``exp(selection * <t_u, v_i>)``,
so *which* items a user rates is informative too, as in real data). A model that learns item factors and
reads a new user's taste from a few ratings beats item means; item means beat the global mean.
"""

from __future__ import annotations

import torch

from metadl.data.ratings import Features, RatingRow, Ratings, assemble


def planted_ratings(
    *,
    n_users: int = 200,
    n_items: int = 100,
    rank: int = 3,
    n_groups: int = 4,
    min_ratings: int = 15,
    max_ratings: int = 40,
    noise: float = 0.3,
    selection: float = 0.0,
    seed: int = 0,
) -> Ratings:
    """A :class:`Ratings` table with planted structure (see the module docstring).

    Example:
        >>> r = planted_ratings(n_users=10, n_items=50, seed=1)
        >>> r.n_users, r.n_items <= 50, set(r.rating.unique().tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
        (10, True, True)
    """
    if max_ratings > n_items or min_ratings > max_ratings:
        raise ValueError(
            f"need min_ratings <= max_ratings <= n_items, got {min_ratings}, {max_ratings}, {n_items}"
        )
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_groups, rank, generator=g)
    group = torch.randint(n_groups, (n_users,), generator=g)
    taste = centres[group] + 0.3 * torch.randn(n_users, rank, generator=g)
    factors = torch.randn(n_items, rank, generator=g)
    bias = 0.6 * torch.randn(n_items, generator=g)
    rows, time = [], 0.0
    for u in range(n_users):
        k = int(torch.randint(min_ratings, max_ratings + 1, (), generator=g))
        if (
            selection > 0
        ):  # Gumbel top-k: k items without replacement, P proportional to exp(selection * match)
            gumbel = -torch.log(-torch.log(torch.rand(n_items, generator=g).clamp(1e-12, 1 - 1e-12)))
            items = torch.topk(selection * (factors @ taste[u]) + gumbel, k).indices
        else:
            items = torch.randperm(n_items, generator=g)[:k]
        raw = 3.0 + bias[items] + 0.6 * factors[items] @ taste[u] + noise * torch.randn(k, generator=g)
        for i, r in zip(items.tolist(), raw.round().clamp(1, 5).tolist(), strict=True):
            time += 1.0
            rows.append(RatingRow(f"u{u}", f"i{i}", float(r), time, "generated"))
    base = assemble(rows)
    users = {f"u{u}": {"group": str(int(group[u]))} for u in range(n_users)}
    item_index = [int(i[1:]) for i in base.item_ids]
    tags = {f"i{i}": [f"g{d}" for d in range(rank) if factors[i, d] > 0] for i in item_index}
    uf = Features.build(base.user_ids, users, ["group"])
    itf = Features.build(base.item_ids, {}, [], tags)
    return assemble(rows, uf, itf, base.user_ids, base.item_ids)
