"""The K2-family MoE runtime: config, model, routing, loader, tokenizer, chat format, generation."""

from .chat import ChatStreamParser, encode_conversation, render_text
from .config import ModelConfig
from .errors import CheckpointError, ConfigError, GenerationError, K2nbError, TokenizerError
from .generate import GenerationResult, GenerationStep, GenerationStream, Session
from .loader import load_model, save_checkpoint
from .model import K2Model
from .routing import route, update_selection_bias
from .tokenizer import Tokenizer, load_tokenizer
from .trace import RoutingTrace

__all__ = [
    "ChatStreamParser", "CheckpointError", "ConfigError", "GenerationError", "GenerationResult",
    "GenerationStep", "GenerationStream", "K2Model", "K2nbError", "ModelConfig", "RoutingTrace", "Session",
    "Tokenizer", "TokenizerError", "encode_conversation", "load_model", "load_tokenizer", "render_text",
    "route", "save_checkpoint", "update_selection_bias",
]
