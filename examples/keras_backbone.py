"""A metadl backbone inside a Keras 3 model (PyTorch backend), through ``keras.layers.TorchModuleWrapper``.

The backbone is meta-trained with metadl (a ProtoNet on 2-D blob tasks, a few seconds), then used as a
frozen feature extractor in a Keras model whose softmax head is trained with ``model.fit`` on a small
labelled set: the route for a team whose pipeline is Keras. The wrapper holds the very same torch module
(no copy, no conversion), so the Keras layer's output equals ``backbone(x)`` exactly; Keras tracks its
parameters as Keras variables, trainable or not as the layer says.

Run: ``KERAS_BACKEND=torch python examples/keras_backbone.py`` (needs ``pip install metadl[keras]``).
The test ``tests/integration/test_keras_example.py`` runs it (skipped when keras is absent).
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # must be set before keras is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from metadl.algorithms import create_learner  # noqa: E402
from metadl.data.base import FewShotDataset  # noqa: E402
from metadl.models import Backbone, create_backbone  # noqa: E402
from metadl.tasks import EpisodeSampler  # noqa: E402
from metadl.training import meta_train  # noqa: E402


def blobs(n_classes: int, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian blobs on the plane: ``x (n_classes * per_class, 2)``, ``y`` class indices."""
    g = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn(n_classes, 1, 2, generator=g)
    x = (centres + torch.randn(n_classes, per_class, 2, generator=g)).flatten(0, 1)
    return x, torch.arange(n_classes).repeat_interleave(per_class)


def meta_trained_backbone(iterations: int = 200) -> Backbone:
    """An MLP backbone meta-trained by a ProtoNet on 5-way 5-shot episodes of 40 blob classes."""
    torch.manual_seed(0)
    x, y = blobs(40, 20, seed=0)
    pool = FewShotDataset(x, y, [f"c{i}" for i in range(40)])
    backbone = create_backbone("mlp", in_features=2, hidden=[32, 32])
    learner = create_learner("protonet", backbone=backbone, n_way=5)
    sampler = EpisodeSampler(pool, n_way=5, k_shot=5, n_query=5, seed=0)
    meta_train(learner, sampler, torch.optim.Adam(learner.parameters(), 1e-3), iterations=iterations,
               meta_batch=4, progress=False)  # fmt: skip
    return backbone.eval()


def keras_classifier(backbone: Backbone, n_classes: int, *, train_backbone: bool = False) -> keras.Model:
    """``input -> metadl backbone (TorchModuleWrapper) -> Dense softmax``, compiled with Adam."""
    features = keras.layers.TorchModuleWrapper(
        backbone, name="metadl_backbone", output_shape=(None, backbone.out_features)
    )
    features.trainable = train_backbone
    inputs = keras.Input(shape=(2,))
    outputs = keras.layers.Dense(n_classes, activation="softmax")(features(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def main() -> float:
    keras.utils.set_random_seed(0)
    backbone = meta_trained_backbone()
    x, y = blobs(4, 30, seed=7)  # a new 4-class problem
    model = keras_classifier(backbone, 4)
    wrapped = model.get_layer("metadl_backbone")
    with torch.no_grad():  # the Keras layer runs the same torch module: identical features
        assert torch.equal(wrapped(x), backbone(x))
    before = [p.detach().clone() for p in backbone.parameters()]
    history = model.fit(x.numpy(), y.numpy(), epochs=30, batch_size=16, verbose=0)
    assert all(torch.equal(a, b) for a, b in zip(before, backbone.parameters(), strict=True))  # frozen
    accuracy = float(np.mean(model.predict(x.numpy(), verbose=0).argmax(-1) == y.numpy()))
    print(f"keras {keras.__version__} ({keras.backend.backend()} backend): loss {history.history['loss'][0]:.3f} -> "
          f"{history.history['loss'][-1]:.3f}, training accuracy {accuracy:.3f}")  # fmt: skip
    return accuracy


if __name__ == "__main__":
    main()
