"""Text encoders: pretrained frozen sentence encoders (with an embedding cache) and tokenizers (BPE,
words) for backbones trained from scratch, behind one interface and one registry."""

from metadl.models.text.bpe import BPETokenizer, TokenizerError
from metadl.models.text.cache import EmbeddingCache, default_cache_dir
from metadl.models.text.encoders import EncoderError, FrozenTextEncoder, TextEncoder, TokenEncoder
from metadl.models.text.layers import LowerLayerEncoder
from metadl.models.text.registry import TEXT_ENCODERS, create_text_encoder, list_text_encoders
from metadl.models.text.sentence import SentenceTransformerEncoder
from metadl.models.text.tokenizer import WordTokenizer
from metadl.models.text.tokenizers import TOKENIZERS, Tokenizer, fit_tokenizer, list_tokenizers
from metadl.models.text.wordllama import WordLlamaEncoder

__all__ = [
    "TEXT_ENCODERS",
    "TOKENIZERS",
    "BPETokenizer",
    "EmbeddingCache",
    "EncoderError",
    "FrozenTextEncoder",
    "LowerLayerEncoder",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "Tokenizer",
    "TokenizerError",
    "TokenEncoder",
    "WordLlamaEncoder",
    "WordTokenizer",
    "create_text_encoder",
    "default_cache_dir",
    "fit_tokenizer",
    "list_text_encoders",
    "list_tokenizers",
]
