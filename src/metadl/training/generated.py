"""The training task stream of a config: labelled episodes or unsupervised tasks, then the configured augmentation.

Only :meth:`metadl.training.run.TrainingRun.setup` calls this, for the training split; validation and
test samplers are built by :func:`metadl.training.build.make_sampler` alone, so they never see the
``augment`` section. A config without one gets exactly the sampler (and the stream) it had before.
"""

from __future__ import annotations

from metadl.augment.config import augmented, unsupervised_source
from metadl.config import Config
from metadl.data.base import FewShotDataset
from metadl.tasks import TaskSource
from metadl.training.build import derive_seed, make_sampler


def training_source(cfg: Config, train_data: FewShotDataset | None) -> TaskSource:
    """The training tasks: ``augment.unsupervised`` over the training split's images if set, else labelled
    episodes; wrapped in the configured augmentation (its own generator, seeded from ``(seed, "augment")``).

    Example:
        >>> from metadl.config import config_from_dict
        >>> cfg = config_from_dict({"dataset": {"name": "sinusoid"}, "backbone": {"name": "mlp"}, "learner": {"name": "maml"}})
        >>> type(training_source(cfg, None)).__name__      # nothing configured: the plain sampler
        'SinusoidSampler'
    """
    s, split = cfg.sampler, cfg.dataset.split
    if cfg.augment.unsupervised is not None and train_data is not None:
        base: TaskSource = unsupervised_source(
            cfg.augment,
            train_data,
            n_way=s.ways,
            k_shot=s.shots,
            n_query=s.queries,
            seed=derive_seed(cfg.seed, split),
        )
    else:
        base = make_sampler(cfg, split, cfg.seed, dataset=train_data)
    return augmented(base, cfg.augment, seed=derive_seed(cfg.seed, "augment"))
