"""Text encoders: pretrained frozen sentence encoders (with an embedding cache) and a tokenizer for
backbones trained from scratch, behind one interface and one registry."""

from metadl.models.text.cache import EmbeddingCache, default_cache_dir
from metadl.models.text.encoders import EncoderError, FrozenTextEncoder, TextEncoder, TokenEncoder
from metadl.models.text.layers import LowerLayerEncoder
from metadl.models.text.registry import TEXT_ENCODERS, create_text_encoder, list_text_encoders
from metadl.models.text.sentence import SentenceTransformerEncoder
from metadl.models.text.tokenizer import WordTokenizer
from metadl.models.text.wordllama import WordLlamaEncoder

__all__ = [
    "TEXT_ENCODERS",
    "EmbeddingCache",
    "EncoderError",
    "FrozenTextEncoder",
    "LowerLayerEncoder",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "TokenEncoder",
    "WordLlamaEncoder",
    "WordTokenizer",
    "create_text_encoder",
    "default_cache_dir",
    "list_text_encoders",
]
