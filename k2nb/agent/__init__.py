"""The reasoning loop and its parts: tools, executors, checks, backends, the Trajectory tree."""

from k2nb.agent.backend import Backend, EngineBackend, GenerationOptions, Prompt, TokenChunk
from k2nb.agent.checks import Verdict
from k2nb.agent.executor import Executor, LocalExecutor, Observation, ToolCallRequest, ToolRegistry
from k2nb.agent.loop import Budgets, Conversation, RunRouting, ThinkOptions, ThinkResult, run_turn, think
from k2nb.agent.python_tool import PythonResult, PythonTool
from k2nb.agent.scripted import ScriptedBackend, Turn
from k2nb.agent.tools import Tool, ToolDefinitionError, tool
from k2nb.agent.trajectory import Check, Node, NodeRouting, Trajectory, TrajectoryEvent

__all__ = [
    "Backend",
    "Budgets",
    "Check",
    "Conversation",
    "EngineBackend",
    "Executor",
    "GenerationOptions",
    "LocalExecutor",
    "Node",
    "NodeRouting",
    "Observation",
    "Prompt",
    "PythonResult",
    "PythonTool",
    "RunRouting",
    "ScriptedBackend",
    "ThinkOptions",
    "ThinkResult",
    "TokenChunk",
    "Tool",
    "ToolCallRequest",
    "ToolDefinitionError",
    "ToolRegistry",
    "Trajectory",
    "TrajectoryEvent",
    "Turn",
    "Verdict",
    "run_turn",
    "think",
    "tool",
]
