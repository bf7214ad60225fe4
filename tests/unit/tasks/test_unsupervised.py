"""UMTRA and CACTUs: valid N-way K-shot tasks from unlabelled pools, seeded; k-means and PCA against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from metadl.augment import Affine
from metadl.data.base import FewShotDataset
from metadl.tasks import TaskSourceError, create_task_source
from metadl.tasks.cactus import CACTUsSource, kmeans, pca
from metadl.tasks.umtra import UMTRASource

pytestmark = pytest.mark.usefixtures("one_thread")


def unlabelled(n: int = 40, side: int = 8, seed: int = 0) -> FewShotDataset:
    coarse = torch.rand(n, 1, 3, 3, generator=torch.Generator().manual_seed(seed))  # smooth images
    x = torch.nn.functional.interpolate(coarse, size=side, mode="bilinear", align_corners=False)
    return FewShotDataset(x, torch.zeros(n, dtype=torch.long), ["unlabelled"])


def blobs(n_per: int = 15, centres: int = 6, seed: int = 0) -> tuple[FewShotDataset, torch.Tensor]:
    """Images whose pixels are a centre's pattern plus noise; returns the pool and the true centre of each image."""
    g = torch.Generator().manual_seed(seed)
    patterns = 3 * torch.rand(centres, 1, 4, 4, generator=g)
    truth = torch.arange(centres).repeat_interleave(n_per)
    x = patterns[truth] + 0.05 * torch.randn(len(truth), 1, 4, 4, generator=g)
    return FewShotDataset(x, torch.zeros(len(truth), dtype=torch.long), ["unlabelled"]), truth


def rows(x: torch.Tensor) -> list[tuple[float, ...]]:
    return [tuple(r.tolist()) for r in x.flatten(1)]


def test_umtra_support_is_the_image_and_queries_are_its_augmentations():
    ds = unlabelled()
    src = UMTRASource(ds, n_way=5, k_shot=2, n_query=3, transforms=Affine(degrees=10, translate=0.1), seed=0)
    batch = src.sample_batch(4)
    pool = rows(ds.data)
    assert batch.support_x.shape == (4, 10, 1, 8, 8) and batch.query_x.shape == (4, 15, 1, 8, 8)
    assert batch.support_y[0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    for t in range(4):
        originals = batch.support_x[t, ::2]  # the first shot of each class is a pool image, all different
        assert all(r in pool for r in rows(originals)) and len(set(rows(originals))) == 5
        for c in range(5):
            queries = batch.query_x[t][batch.query_y[t] == c]
            assert not any(
                torch.equal(q, originals[c]) for q in queries
            )  # support and query never share an example
            # each query is closer to its own class's image than to the others (small augmentations)
            dist = (queries.flatten(1).unsqueeze(1) - originals.flatten(1)).pow(2).sum(-1)
            assert (dist.argmin(1) == c).float().mean() >= 2 / 3


def test_umtra_without_transforms_copies_the_image():
    batch = UMTRASource(unlabelled(), n_way=3, k_shot=1, n_query=2, transforms=[], seed=1).sample_batch(2)
    assert torch.equal(batch.query_x.view(2, 3, 2, 1, 8, 8)[:, :, 0], batch.support_x)


def test_umtra_is_seeded_and_resumes():
    a = create_task_source("umtra", dataset=unlabelled(), n_way=4, k_shot=1, n_query=1, seed=3)
    b = create_task_source("umtra", dataset=unlabelled(), n_way=4, k_shot=1, n_query=1, seed=3)
    assert torch.equal(a.sample_batch(2).query_x, b.sample_batch(2).query_x)
    state = a.state_dict()
    nxt = a.sample_batch(2).query_x
    b.load_state_dict(state)
    assert torch.equal(b.sample_batch(2).query_x, nxt)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_way": 50}, "n_way = 50 but unlabelled has only 40 images"),
        ({"n_way": 0}, "n_way = 0: must be an int >= 1"),
        ({"n_way": 3, "transforms": [{"name": "blur"}]}, "unknown transform 'blur'"),
    ],
)
def test_umtra_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UMTRASource(
            FewShotDataset(
                torch.rand(40, 1, 4, 4), torch.zeros(40, dtype=torch.long), ["u"], name="unlabelled"
            ),
            **kwargs,
        )


def test_kmeans_matches_scikit_learn_inertia():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(40, 3, generator=g) + 6 * torch.randn(1, 3, generator=g) for _ in range(5)])
    labels, centres = kmeans(x, 5, g)
    ours = float((x - centres[labels]).pow(2).sum())
    ref = KMeans(5, n_init=10, random_state=0).fit(x.numpy()).inertia_
    assert ours == pytest.approx(ref, rel=0.02)


def test_pca_matches_scikit_learn_up_to_sign():
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(0)) * torch.tensor(
        [5.0, 3, 2, 1, 0.5, 0.1]
    )
    ours = pca(x, 3).numpy()
    ref = PCA(3).fit_transform(x.numpy())
    assert np.allclose(np.abs(ours), np.abs(ref), atol=1e-4)


def test_cactus_tasks_are_clusters_with_disjoint_support_and_query():
    ds, truth = blobs()
    src = CACTUsSource(ds, n_way=4, k_shot=2, n_query=3, partitions=3, clusters=6, dim=8, seed=0)
    for _ in range(5):
        idx = src.indices()  # (N, K + Q) pool indices, one row per class
        assert idx.shape == (4, 5)
        assert len(set(idx.flatten().tolist())) == 20  # no image twice: support and query are disjoint
        # well-separated blobs: every pseudo-class is one true class, and the classes differ
        classes = [set(truth[row].tolist()) for row in idx]
        assert all(len(c) == 1 for c in classes) and len(set.union(*classes)) == 4
    batch = src.sample_batch(3)
    assert (
        batch.support_x.shape == (3, 8, 1, 4, 4)
        and batch.query_y[0].tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    )


def test_cactus_partitions_depend_on_partition_seed_only():
    ds, _ = blobs()
    a = CACTUsSource(ds, n_way=2, partitions=2, clusters=6, dim=4, seed=0)
    b = CACTUsSource(ds, n_way=2, partitions=2, clusters=6, dim=4, seed=1)
    assert all(
        torch.equal(x, y)
        for pa, pb in zip(a.members, b.members, strict=True)
        for x, y in zip(pa, pb, strict=True)
    )


def test_cactus_accepts_given_embeddings_and_refuses_bad_ones():
    ds, truth = blobs()
    emb = torch.nn.functional.one_hot(truth).float()
    src = CACTUsSource(ds, n_way=3, partitions=1, clusters=6, embeddings=emb, seed=0)
    assert len(src.members[0]) == 6
    with pytest.raises(TaskSourceError, match=r"embeddings must be \(N, D\) with N = 90"):
        CACTUsSource(ds, n_way=3, clusters=6, embeddings=emb[:10])
    with pytest.raises(
        TaskSourceError, match="no partition has 3 clusters of at least k_shot \\+ n_query = 30"
    ):
        CACTUsSource(ds, n_way=3, k_shot=10, n_query=20, partitions=1, clusters=6)
