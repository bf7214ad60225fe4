"""WordLlama (MIT): a static encoder, token embeddings averaged, fast on any CPU; weights inside its wheel.

``pip install wordllama`` ships ``weights/l2_supercat_256.safetensors`` (token embeddings, 256-d) and
``tokenizers/l2_supercat_tokenizer_config.json``. They are read directly from the installed package
(the library's own loader looks for the tokenizer in a ``tokenizer/`` folder the wheel does not have, and
would try the network), and both files make the fingerprint that keys the embedding cache.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.numpy import load_file
from torch import Tensor

from metadl.models.text.cache import EmbeddingCache, default_cache_dir
from metadl.models.text.encoders import EncoderError, FrozenTextEncoder
from metadl.models.text.sentence import hash_files

CONFIG = "l2_supercat"


def wordllama_files(dim: int = 256) -> tuple[Path, Path, Path]:
    """``(package folder, weights file, tokenizer file)`` of the installed ``wordllama`` package."""
    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderError("wordllama is not installed; pip install 'metadl[text]'")
    root = Path(list(spec.submodule_search_locations)[0])
    weights = root / "weights" / f"{CONFIG}_{dim}.safetensors"
    tokenizer = root / "tokenizers" / f"{CONFIG}_tokenizer_config.json"
    for path in (weights, tokenizer):
        if not path.is_file():
            raise EncoderError(f"{path} is missing; reinstall wordllama (its wheel ships {CONFIG} {dim}-d)")
    return root, weights, tokenizer


class WordLlamaEncoder(FrozenTextEncoder):
    """Frozen WordLlama sentence embeddings ``(N, dim)``, L2-normalised.

    Args:
        dim: 256 (the size shipped in the wheel); trunc_dim: keep the first dimensions (64, 128).
        cache, cache_dir, batch_size: as for :class:`~metadl.models.text.sentence.SentenceTransformerEncoder`.
    """

    name = "wordllama"

    def __init__(
        self,
        *,
        dim: int = 256,
        trunc_dim: int | None = None,
        cache: bool = True,
        cache_dir: str | None = None,
        batch_size: int = 256,
    ) -> None:
        root = Path(cache_dir) if cache_dir else default_cache_dir()
        super().__init__(cache=EmbeddingCache(root / "embeddings") if cache else None, batch_size=batch_size)
        try:
            from tokenizers import Tokenizer  # optional dependencies: metadl[text]
            from wordllama.inference import WordLlamaInference
        except ImportError:
            raise EncoderError("wordllama is not installed; pip install 'metadl[text]'") from None
        if trunc_dim is not None and not 1 <= trunc_dim <= dim:
            raise EncoderError(f"trunc_dim={trunc_dim} must be in [1, dim={dim}]")
        folder, weights, tokenizer = wordllama_files(dim)
        table = load_file(str(weights))["embedding.weight"]
        if trunc_dim is not None:
            table = table[:, :trunc_dim]
        self.net = WordLlamaInference(table, Tokenizer.from_file(str(tokenizer)), binary=False)
        self.dim = int(table.shape[1])
        self.fingerprint = hash_files(folder, [weights, tokenizer]) + f":{self.dim}"
        self._options = {"dim": dim, "trunc_dim": trunc_dim, "cache": cache, "cache_dir": cache_dir}

    def _embed(self, texts: Sequence[str]) -> Tensor:
        return torch.from_numpy(self.net.embed(list(texts), norm=True)).float()

    def config(self) -> dict[str, object]:
        return {"name": self.name, **self._options, "batch_size": self.batch_size}
