"""CACTUs (Hsu, Levine & Finn, ICLR 2019): tasks from k-means clusters of unlabelled embeddings.

The pool's images are embedded (by default: their first ``dim`` principal components; a learned,
e.g. self-supervised, embedding can be passed as ``embeddings``), then partitioned ``partitions``
times by k-means with ``clusters`` centres, each time on the embedding with every dimension scaled by a
random factor in U(0, 1) (the paper's device for diverse partitions; the distribution is ours). A task
picks one partition, ``n_way`` of its clusters with at least ``k_shot + n_query`` members, and draws
``k_shot + n_query`` distinct members of each: the clusters are the pseudo-classes, and support and
query never share an image.

Partitions are computed once, at construction, from ``seed`` (a generator of their own, so the task
stream's ``state_dict`` stays small and a rebuilt source with the same seed has the same partitions).
"""

from __future__ import annotations

import torch
from torch import Tensor

from metadl.data.base import FewShotDataset
from metadl.tasks.source import SeededSource, TaskKind, TaskSourceError, seeded_generator
from metadl.tasks.task import Task, TaskBatch


def pca(x: Tensor, dim: int) -> Tensor:
    """``(N, D)`` -> ``(N, dim)`` projections on the top principal components (eigenvectors of the covariance).

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [2.0, 0.1], [4.0, -0.1]])
        >>> pca(x, 1).abs().flatten().round(decimals=2).tolist()
        [2.0, 0.0, 2.0]
    """
    x = x.double() - x.double().mean(0)
    _, vectors = torch.linalg.eigh(x.T @ x)  # ascending eigenvalues
    return (x @ vectors[:, -dim:].flip(1)).float()


def kmeans(x: Tensor, k: int, generator: torch.Generator, iterations: int = 30) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means with k-means++ seeding: ``(labels (N,), centres (k, D))``, seeded by ``generator``.

    An emptied cluster is re-seeded at the point farthest from its centre.

    Example:
        >>> x = torch.cat([torch.zeros(5, 2), torch.full((5, 2), 10.0)])
        >>> labels, _ = kmeans(x, 2, torch.Generator().manual_seed(0))
        >>> len(set(labels[:5].tolist())), len(set(labels[5:].tolist())), labels[0] != labels[5]
        (1, 1, tensor(True))
    """
    n = len(x)
    centres = x[torch.randint(n, (1,), generator=generator)]
    closest = torch.cdist(x, centres).squeeze(1).pow(2)
    for _ in range(1, k):  # k-means++: the next centre with probability proportional to squared distance
        weights = closest / closest.sum() if float(closest.sum()) > 0 else torch.full((n,), 1.0 / n)
        pick = torch.multinomial(weights, 1, generator=generator)
        centres = torch.cat([centres, x[pick]])
        closest = torch.minimum(closest, torch.cdist(x, x[pick]).squeeze(1).pow(2))
    labels = torch.cdist(x, centres).argmin(1)
    for _ in range(iterations):
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        new = sums / counts.clamp(min=1).unsqueeze(1)
        dist = torch.cdist(x, new)
        for empty in (counts == 0).nonzero().flatten().tolist():
            far = int(dist.gather(1, labels.unsqueeze(1)).argmax())
            new[empty], dist[:, empty] = x[far], torch.cdist(x, x[far : far + 1]).squeeze(1)
        centres = new
        updated = dist.argmin(1)
        if torch.equal(updated, labels):
            break
        labels = updated
    return labels, centres


class CACTUsSource(SeededSource):
    """N-way K-shot tasks whose classes are k-means clusters of an unlabelled pool (see the module docstring).

    Args:
        dataset: the unlabelled pool (one split; its labels are not used).
        n_way, k_shot, n_query: the task shape.
        partitions: how many k-means partitions to draw tasks from.
        clusters: k of each k-means.
        dim: principal components of the pixels used as the embedding (when ``embeddings`` is None).
        embeddings: ``(N, D)`` embedding of the pool's examples, in the pool's order (default: PCA of pixels).
        seed: an int or a ``torch.Generator`` for the tasks; the partitions use ``partition_seed``.
        partition_seed: the seed of the k-means runs.

    Example:
        >>> ds = FewShotDataset(torch.rand(60, 1, 4, 4), torch.zeros(60, dtype=torch.long), ["unlabelled"])
        >>> src = CACTUsSource(ds, n_way=3, k_shot=1, n_query=1, partitions=2, clusters=6, dim=4, seed=0)
        >>> tuple(src.sample().support_x.shape)
        (3, 1, 4, 4)
    """

    kind: TaskKind = "classification"
    batchable = True

    def __init__(
        self,
        dataset: FewShotDataset,
        *,
        n_way: int,
        k_shot: int = 1,
        n_query: int = 1,
        partitions: int = 10,
        clusters: int = 100,
        dim: int = 32,
        embeddings: Tensor | None = None,
        seed: int | torch.Generator = 0,
        partition_seed: int = 0,
    ) -> None:
        for key, value in (("n_way", n_way), ("k_shot", k_shot), ("n_query", n_query)):
            if value < 1:
                raise TaskSourceError(f"{key} = {value}: must be >= 1")
        for key, value in (("partitions", partitions), ("clusters", clusters), ("dim", dim)):
            if value < 1:
                raise TaskSourceError(f"{key} = {value}: must be >= 1")
        if clusters > len(dataset):
            raise TaskSourceError(
                f"clusters = {clusters} but {dataset.name} has only {len(dataset)} examples"
            )
        if embeddings is None:
            flat = dataset.gather(torch.arange(len(dataset))).flatten(1)
            embeddings = pca(flat, min(dim, flat.shape[1]))
        if embeddings.dim() != 2 or len(embeddings) != len(dataset):
            raise TaskSourceError(
                f"embeddings must be (N, D) with N = {len(dataset)} examples; got {tuple(embeddings.shape)}"
            )
        self.dataset, self.n_way, self.k_shot, self.n_query = dataset, n_way, k_shot, n_query
        g = torch.Generator().manual_seed(partition_seed)
        need = k_shot + n_query
        self.members: list[list[Tensor]] = []  # per partition, the members of each usable cluster
        for _ in range(partitions):
            scaled = embeddings.float() * torch.rand(embeddings.shape[1], generator=g)
            labels, _ = kmeans(scaled, clusters, g)
            groups = [(labels == c).nonzero().flatten() for c in range(clusters)]
            usable = [m for m in groups if len(m) >= need]
            if len(usable) >= n_way:
                self.members.append(usable)
        if not self.members:
            raise TaskSourceError(
                f"no partition has {n_way} clusters of at least k_shot + n_query = {need} examples; "
                f"lower clusters (now {clusters}), n_way or the shots"
            )
        self.generator = seeded_generator(seed)

    def indices(self) -> Tensor:
        """``(N, K + Q)`` pool indices of one task, class by class (support first)."""
        g = self.generator
        part = self.members[int(torch.randint(len(self.members), (1,), generator=g))]
        chosen = torch.randperm(len(part), generator=g)[: self.n_way].tolist()
        rows = []
        for c in chosen:
            members = part[c]
            rows.append(members[torch.randperm(len(members), generator=g)[: self.k_shot + self.n_query]])
        return torch.stack(rows)

    def sample_batch(self, n_tasks: int) -> TaskBatch:
        if n_tasks < 1:
            raise TaskSourceError(f"n_tasks must be >= 1, got {n_tasks}")
        idx = torch.stack([self.indices() for _ in range(n_tasks)])  # (T, N, K + Q)
        x = self.dataset.gather(idx)
        t, n, k, q = n_tasks, self.n_way, self.k_shot, self.n_query
        shape = self.dataset.x_shape
        labels = torch.arange(n).view(1, n, 1)
        return TaskBatch(
            x[:, :, :k].reshape(t, n * k, *shape),
            labels.expand(t, n, k).reshape(t, n * k),
            x[:, :, k:].reshape(t, n * q, *shape),
            labels.expand(t, n, q).reshape(t, n * q),
        )

    def sample(self) -> Task:
        return self.sample_batch(1)[0]
