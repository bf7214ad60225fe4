"""The learner registry: one visible dict, filled here, and the functions that read it."""

from __future__ import annotations

from typing import Any

from metadl.algorithms.anil import ANIL
from metadl.algorithms.base import Learner
from metadl.algorithms.hallucination import HallucinationNet
from metadl.algorithms.logreg import LogRegHead
from metadl.algorithms.maml import FOMAML, MAML
from metadl.algorithms.matchingnet import MatchingNet
from metadl.algorithms.metasgd import MetaSGD
from metadl.algorithms.neural_process import ANP, CNP
from metadl.algorithms.pairwise import PairwiseSimilarityClusterer
from metadl.algorithms.protonet import ProtoNet
from metadl.algorithms.randomforest import RandomForestHead
from metadl.algorithms.relationnet import RelationNet
from metadl.algorithms.reptile import Reptile
from metadl.algorithms.ridge import R2D2
from metadl.algorithms.softkmeans import SoftKMeansClusterer
from metadl.algorithms.svm import MetaSVM

LEARNERS: dict[str, type[Learner]] = {
    "protonet": ProtoNet,
    "hallucination": HallucinationNet,  # ProtoNet + a jointly trained feature generator (Wang et al. 2018)
    "matchingnet": MatchingNet,
    "relationnet": RelationNet,
    "svm": MetaSVM,
    "ridge": R2D2,
    "logreg": LogRegHead,
    "randomforest": RandomForestHead,
    "maml": MAML,
    "fomaml": FOMAML,
    "metasgd": MetaSGD,
    "anil": ANIL,
    "reptile": Reptile,
    "cnp": CNP,
    "anp": ANP,
    "softkmeans": SoftKMeansClusterer,
    "pairwise": PairwiseSimilarityClusterer,
}


def list_learners() -> list[str]:
    """Names accepted by :func:`create_learner`."""
    return sorted(LEARNERS)


def create_learner(name: str, **kwargs: Any) -> Learner:
    """Build a learner by name, e.g. ``create_learner("protonet", backbone=bb, n_way=5)``."""
    try:
        cls = LEARNERS[name]
    except KeyError:
        raise ValueError(f"unknown learner {name!r}; choose one of {list_learners()}") from None
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise TypeError(f"create_learner({name!r}): {err}") from None
