"""Neural processes: conditional (Garnelo et al. 2018) and attentive (Kim et al. 2019).

A neural process meta-learns a map from a support (context) set straight to a predictive
distribution: adapting to a task is one forward pass, no gradient steps.

Regression (float targets, ``out_features=``). Each support pair is encoded, ``r_i = h([f(x_i), y_i])``
with ``f`` the backbone. The CNP aggregates by the mean, ``r = mean_i r_i`` (permutation invariant); the
ANP passes the ``r_i`` through self-attention and lets each query attend to them,
``r* = attention(query=f(x*), keys=f(x_i), values=r_i)``, and adds a global latent
``z ~ N(mu(s), sigma(s))`` with ``s`` the mean of a second encoding of the pairs. The decoder maps
``[f(x*), r, (z)]`` to a mean and ``sigma = min_std + (1 - min_std) * softplus(raw)`` per output, and
the loss is the Gaussian negative log-likelihood of the query targets
(:func:`~metadl.algorithms.base.gaussian_nll`). ANP training samples ``z`` from the posterior given
support and query (reparameterised, from the learner's own seeded generator) and adds
``KL(q(z | C, T) || q(z | C))`` per target element: the ELBO of Kim et al. Evaluation and ``adapt`` use
the mean of ``q(z | C)``, so predictions are deterministic.

Classification (integer labels, ``n_way=``; Garnelo et al. section 4.3). The support encodings are
aggregated per class (the mean for the CNP; for the ANP, attention restricted to the class's support
examples) and the decoder scores each class representation against the query,
``logit_c = g([f(x*), r_c])``, so an episode may have any number of classes.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metadl.algorithms.base import (
    Capabilities,
    Learner,
    LearnerOutput,
    Predictor,
    encode_labels,
    gaussian_nll,
    make_output,
)
from metadl.algorithms.heads import embed_tasks
from metadl.algorithms.protonet import prototypes
from metadl.models.base import Backbone
from metadl.tasks.task import TaskBatch, is_classification


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


def gaussian_head(raw: Tensor, min_std: float) -> tuple[Tensor, Tensor]:
    """Split ``(..., 2 * out)`` decoder outputs into a mean and a variance ``(..., out)`` each.

    Example:
        >>> mean, var = gaussian_head(torch.tensor([[1.0, 0.0]]), min_std=0.1)
        >>> mean.item(), round(var.item(), 4)   # sigma = 0.1 + 0.9 * softplus(0) = 0.7238
        (1.0, 0.5239)
    """
    mean, s = raw.chunk(2, dim=-1)
    std = min_std + (1 - min_std) * F.softplus(s)
    return mean, std.pow(2)


def check_head(n_way: int | None, out_features: int | None, min_std: float) -> None:
    if (n_way is None) == (out_features is None):
        raise ValueError(
            f"give exactly one of n_way (classification) and out_features (regression), got {n_way=}, {out_features=}"
        )
    if (n_way or out_features or 0) < 1:
        raise ValueError(f"n_way / out_features must be >= 1, got {n_way or out_features}")
    if not 0.0 < min_std < 1.0:
        raise ValueError(f"min_std must lie in (0, 1), got {min_std}")


def pair_query(fq: Tensor, per_class: Tensor) -> Tensor:
    """``fq (T, Q, D)`` and ``per_class (T, Q or 1, N, H)`` -> ``(T, Q, N, D + H)`` decoder inputs."""
    t, q, d = fq.shape
    n = per_class.shape[2]
    return torch.cat([fq.unsqueeze(2).expand(t, q, n, d), per_class.expand(t, q, n, -1)], -1)


class NeuralProcessBase(Learner):
    """What the CNP and the ANP share: backbone, decoder, the two task kinds, ``adapt``.

    Subclasses implement ``represent(fs, sy, fq, query_y)`` (regression: ``(T, Q, R)`` decoder inputs
    beside ``f(x*)`` and a KL term) and ``class_representations(fs, sy, fq, n_way)`` (``(T, Q or 1, N, H)``).
    """

    capabilities: ClassVar[Capabilities] = Capabilities(regression=True, uncertainty=True)
    decoder: nn.Sequential  # built by the subclass: [f(x*), representation] -> 2 * out (or 1 logit)

    def __init__(
        self, *, backbone: Backbone, n_way: int | None, out_features: int | None, hidden: int, min_std: float
    ) -> None:
        super().__init__()
        check_head(n_way, out_features, min_std)
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        self.backbone, self.n_way, self.out_features = backbone, n_way, out_features
        self.hidden, self.min_std = hidden, min_std
        self.pair_width = backbone.out_features + (out_features or 0)  # encoder input [f(x), y]

    def represent(self, fs: Tensor, sy: Tensor, fq: Tensor, query_y: Tensor | None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def class_representations(self, fs: Tensor, sy: Tensor, fq: Tensor, n_way: int) -> Tensor:
        raise NotImplementedError

    def gaussian(
        self, support_x: Tensor, support_y: Tensor, query_x: Tensor, query_y: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Predictive ``(mean, variance, kl)`` for queries ``(T, Q, *x)``; ``query_y`` only in training."""
        fs, fq = embed_tasks(self.backbone, support_x), embed_tasks(self.backbone, query_x)
        rep, kl = self.represent(fs, support_y, fq, query_y)
        mean, var = gaussian_head(self.decoder(torch.cat([fq, rep], -1)), self.min_std)
        return mean, var, kl

    def class_logits(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, n_way: int) -> Tensor:
        """``(T, Q, N)`` logits: the decoder's score of each class representation for each query."""
        fs, fq = embed_tasks(self.backbone, support_x), embed_tasks(self.backbone, query_x)
        per_class = self.class_representations(fs, support_y, fq, n_way)
        return self.decoder(pair_query(fq, per_class)).squeeze(-1)

    def check_targets(self, batch: TaskBatch) -> None:
        if batch.is_classification and self.n_way is None:
            raise ValueError(
                f"{type(self).__name__} was created for regression (out_features={self.out_features}) "
                "but the tasks have class labels; create it with n_way="
            )
        if not batch.is_classification and batch.query_y.shape[-1] != self.out_features:
            raise ValueError(
                f"regression targets have {batch.query_y.shape[-1]} outputs but the learner has "
                f"out_features={self.out_features}; create it with out_features={batch.query_y.shape[-1]}"
            )

    def forward(self, batch: TaskBatch) -> LearnerOutput:
        self.check_targets(batch)
        if batch.is_classification:
            return make_output(
                self.class_logits(batch.support_x, batch.support_y, batch.query_x, batch.n_way), batch
            )
        mean, var, kl = self.gaussian(
            batch.support_x, batch.support_y, batch.query_x, batch.query_y if self.training else None
        )
        loss = gaussian_nll(mean, var, batch.query_y) + kl
        return LearnerOutput(loss=loss, logits=mean, query_y=batch.query_y, variance=var)

    @torch.no_grad()
    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        """Condition on one support set ``(S, *x_shape)``; the learner is unchanged."""
        sx = support_x.unsqueeze(0)
        classes, y = encode_labels(support_y) if is_classification(support_y) else (None, support_y)
        sy = y.unsqueeze(0)
        self.check_targets(TaskBatch(sx, sy, sx, sy))
        if classes is not None:
            n = len(classes)
            return Predictor(lambda x: self.class_logits(sx, sy, x.unsqueeze(0), n)[0], classes)
        return Predictor(
            lambda x: self.gaussian(sx, sy, x.unsqueeze(0))[0][0],
            None,
            variance=lambda x: self.gaussian(sx, sy, x.unsqueeze(0))[1][0],
        )


class CNP(NeuralProcessBase):
    """Conditional neural process: mean-aggregated support encodings, Gaussian predictions.

    Args:
        backbone: feature extractor ``f`` applied to every input.
        n_way: classification (any number of classes per episode), or
        out_features: regression outputs; give exactly one.
        hidden: width of the encoder, the representation and the decoder.
        min_std: floor of the predicted standard deviation.

    Example:
        >>> from metadl.models import create_backbone
        >>> cnp = CNP(backbone=create_backbone("mlp", in_features=1, hidden=[16]), out_features=1, hidden=16)
        >>> x, y = torch.randn(3, 8, 1), torch.randn(3, 8, 1)
        >>> out = cnp(TaskBatch(x[:, :5], y[:, :5], x[:, 5:], y[:, 5:]))
        >>> out.loss.backward(); out.logits.shape, out.variance.shape
        (torch.Size([3, 3, 1]), torch.Size([3, 3, 1]))
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        n_way: int | None = None,
        out_features: int | None = None,
        hidden: int = 128,
        min_std: float = 0.01,
    ) -> None:
        super().__init__(
            backbone=backbone, n_way=n_way, out_features=out_features, hidden=hidden, min_std=min_std
        )
        d, h = backbone.out_features, hidden
        self.encoder = mlp([self.pair_width, h, h, h])
        self.decoder = mlp([d + h, h, h, 2 * out_features if out_features else 1])

    def represent(self, fs: Tensor, sy: Tensor, fq: Tensor, query_y: Tensor | None) -> tuple[Tensor, Tensor]:
        r = self.encoder(torch.cat([fs, sy], -1)).mean(1, keepdim=True)  # (T, 1, H)
        return r.expand(-1, fq.shape[1], -1), fq.new_zeros(())

    def class_representations(self, fs: Tensor, sy: Tensor, fq: Tensor, n_way: int) -> Tensor:
        return prototypes(self.encoder(fs), sy, n_way).unsqueeze(1)  # (T, 1, N, H)


class ANP(NeuralProcessBase):
    """Attentive neural process: self-attention over the support encodings, cross-attention from each
    query, and a global latent variable (``latent_dim=0`` drops it: the deterministic ANP).

    Args:
        backbone, n_way, out_features, hidden, min_std: as :class:`CNP`.
        heads: attention heads (``hidden`` must be divisible by it).
        latent_dim: size of the latent ``z`` (regression only); 0 for none.
        seed: seeds the generator of the training-time samples of ``z``.

    Example:
        >>> from metadl.models import create_backbone
        >>> anp = ANP(backbone=create_backbone("mlp", in_features=1, hidden=[16]), out_features=1, hidden=16, heads=2)
        >>> x, y = torch.randn(3, 8, 1), torch.randn(3, 8, 1)
        >>> out = anp(TaskBatch(x[:, :5], y[:, :5], x[:, 5:], y[:, 5:]))
        >>> out.loss.backward(); out.logits.shape, bool((out.variance > 0).all())
        (torch.Size([3, 3, 1]), True)
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        n_way: int | None = None,
        out_features: int | None = None,
        hidden: int = 128,
        min_std: float = 0.01,
        heads: int = 8,
        latent_dim: int = 128,
        seed: int = 0,
    ) -> None:
        super().__init__(
            backbone=backbone, n_way=n_way, out_features=out_features, hidden=hidden, min_std=min_std
        )
        if heads < 1 or hidden % heads:
            raise ValueError(f"hidden={hidden} must be a multiple of heads={heads}")
        if latent_dim < 0:
            raise ValueError(f"latent_dim must be >= 0, got {latent_dim}")
        d, h = backbone.out_features, hidden
        self.latent_dim = latent_dim if out_features else 0
        self.encoder = mlp([self.pair_width, h, h])
        self.self_attention = nn.MultiheadAttention(h, heads, batch_first=True)
        self.query_proj, self.key_proj = nn.Linear(d, h), nn.Linear(d, h)
        self.cross_attention = nn.MultiheadAttention(h, heads, batch_first=True)
        if self.latent_dim:
            self.latent_encoder = mlp([self.pair_width, h, h])
            self.latent_stats = nn.Linear(h, 2 * self.latent_dim)
        self.decoder = mlp([d + h + self.latent_dim, h, h, 2 * out_features if out_features else 1])
        self.generator = torch.Generator().manual_seed(seed)

    def values(self, pairs: Tensor, same_class: Tensor | None = None) -> Tensor:
        """Encoded support pairs after self-attention: ``(T, S, W)`` -> ``(T, S, H)``.

        ``same_class`` ``(T, S, S)`` (classification) restricts each example's attention to its class.
        """
        r = self.encoder(pairs)
        mask = (
            None if same_class is None else (~same_class).repeat_interleave(self.self_attention.num_heads, 0)
        )
        return r + self.self_attention(r, r, r, attn_mask=mask, need_weights=False)[0]

    def latent(self, f: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """``q(z | set)``: mean and standard deviation ``(T, latent_dim)`` from the pairs ``(T, S, *)``."""
        s = self.latent_encoder(torch.cat([f, y], -1)).mean(1)
        mu, raw = self.latent_stats(s).chunk(2, dim=-1)
        return mu, 0.1 + 0.9 * torch.sigmoid(raw)

    def represent(self, fs: Tensor, sy: Tensor, fq: Tensor, query_y: Tensor | None) -> tuple[Tensor, Tensor]:
        values = self.values(torch.cat([fs, sy], -1))
        r = self.cross_attention(self.query_proj(fq), self.key_proj(fs), values, need_weights=False)[0]
        if not self.latent_dim:
            return r, fq.new_zeros(())
        mu, sigma = self.latent(fs, sy)
        kl = fq.new_zeros(())
        z = mu
        if query_y is not None:  # training: z from the posterior q(z | C, T), plus KL to the prior q(z | C)
            mu_post, sigma_post = self.latent(torch.cat([fs, fq], 1), torch.cat([sy, query_y], 1))
            eps = torch.randn(mu_post.shape, generator=self.generator).to(mu_post)
            z = mu_post + sigma_post * eps
            kl_per_task = (
                torch.log(sigma / sigma_post) + (sigma_post**2 + (mu_post - mu) ** 2) / (2 * sigma**2) - 0.5
            ).sum(-1)
            kl = kl_per_task.mean() / query_y[0].numel()  # per target element, as the NLL is averaged
        return torch.cat([r, z.unsqueeze(1).expand(-1, fq.shape[1], -1)], -1), kl

    def class_representations(self, fs: Tensor, sy: Tensor, fq: Tensor, n_way: int) -> Tensor:
        t, s, _ = fs.shape
        q = fq.shape[1]
        values = self.values(fs, same_class=sy.unsqueeze(2) == sy.unsqueeze(1))
        keys, queries = self.key_proj(fs), self.query_proj(fq)

        def per_class(z: Tensor) -> Tensor:  # (T, S or Q, H) -> (T * N, S or Q, H): one copy per class
            return z.unsqueeze(1).expand(-1, n_way, -1, -1).reshape(t * n_way, z.shape[1], -1)

        others = F.one_hot(sy, n_way).transpose(1, 2).reshape(t * n_way, s) == 0  # mask other classes
        r = self.cross_attention(
            per_class(queries),
            per_class(keys),
            per_class(values),
            key_padding_mask=others,
            need_weights=False,
        )[0]
        return r.reshape(t, n_way, q, -1).transpose(1, 2)  # (T, Q, N, H)
