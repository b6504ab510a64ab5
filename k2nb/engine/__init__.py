"""The K2-family MoE runtime: config, model, kernels (ops), routing rule, loader, tokenizer, generation."""

from .config import ModelConfig
from .errors import CheckpointError, ConfigError, GenerationError, K2nbError, TokenizerError
from .generate import GenerationResult, GenerationStep, GenerationStream, Session, generate, generate_stream
from .loader import hf_tensors, load_model, save_checkpoint
from .model import K2Model
from .routing import route, update_selection_bias
from .tokenizer import Tokenizer, load_tokenizer

__all__ = [
    "CheckpointError", "ConfigError", "GenerationError", "GenerationResult", "GenerationStep",
    "GenerationStream", "K2Model", "K2nbError", "ModelConfig", "Session", "Tokenizer", "TokenizerError",
    "generate", "generate_stream", "hf_tensors", "load_model", "load_tokenizer", "route", "save_checkpoint",
    "update_selection_bias",
]
