"""The recommender registry: baselines and meta-learners by name, built with their defaults or keywords.

Example:
    >>> list_recommenders()
    ['global_mean', 'item_mean', 'melu', 'melu_full', 'mf', 'popularity', 'random', 'ridge', 'twohead', 'user_item_bias']
    >>> type(create_recommender("item_mean", damping=2.0)).__name__
    'ItemMean'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from metadl.apps.recsys.baselines import (
    GlobalMean,
    ItemMean,
    MatrixFactorisation,
    Popularity,
    RandomOrder,
    Recommender,
    UserItemBias,
)
from metadl.apps.recsys.meta import (
    DEFAULT_EPISODES,
    EpisodeSettings,
    MetaRecommender,
    TwoHeadMetaRecommender,
    melu_builder,
    ridge_builder,
)


def _melu(settings: EpisodeSettings = DEFAULT_EPISODES, **kwargs: Any) -> MetaRecommender:
    return MetaRecommender(melu_builder(**kwargs), settings)


def _melu_full(settings: EpisodeSettings = DEFAULT_EPISODES, **kwargs: Any) -> MetaRecommender:
    return MetaRecommender(melu_builder(adapt="full", **kwargs), settings)


def _ridge(settings: EpisodeSettings = DEFAULT_EPISODES, **kwargs: Any) -> MetaRecommender:
    return MetaRecommender(ridge_builder(**kwargs), settings)


RECOMMENDERS: dict[str, Callable[..., Recommender]] = {
    "random": RandomOrder,
    "global_mean": GlobalMean,
    "item_mean": ItemMean,
    "user_item_bias": UserItemBias,
    "popularity": Popularity,
    "mf": MatrixFactorisation,
    "melu": _melu,
    "melu_full": _melu_full,
    "ridge": _ridge,
    "twohead": TwoHeadMetaRecommender,
}
BASELINES = ("random", "global_mean", "item_mean", "user_item_bias", "popularity", "mf")


def list_recommenders() -> list[str]:
    """Names accepted by :func:`create_recommender`."""
    return sorted(RECOMMENDERS)


def create_recommender(name: str, **kwargs: Any) -> Recommender:
    """A recommender by name; keywords are its constructor's (meta-learners: ``settings=`` and the builder's)."""
    try:
        build = RECOMMENDERS[name]
    except KeyError:
        raise ValueError(f"unknown recommender {name!r}; choose one of {list_recommenders()}") from None
    if name not in ("melu", "melu_full", "ridge", "twohead"):
        try:
            inspect.signature(build).bind(**kwargs)
        except TypeError as err:
            raise TypeError(f"create_recommender({name!r}): {err}") from None
    return build(**kwargs)
